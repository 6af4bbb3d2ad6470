import type { StreamSummary } from "../api/types.js";

/** A node of the path tree: a segment, the stream at it (if any), and its children. */
export interface TreeNode {
  segment: string;
  path: string;
  stream: StreamSummary | null;
  children: TreeNode[];
}

/** The streams as a tree of their path segments, children sorted by name. */
export function treeOf(streams: readonly StreamSummary[]): TreeNode {
  const root: TreeNode = { segment: "", path: "", stream: null, children: [] };
  for (const stream of streams) {
    let node = root;
    for (const segment of stream.path.slice(1).split("/")) {
      const path = `${node.path}/${segment}`;
      let child = node.children.find((c) => c.segment === segment);
      if (child === undefined) {
        child = { segment, path, stream: null, children: [] };
        node.children.push(child);
      }
      node = child;
    }
    node.stream = stream;
  }
  const sort = (node: TreeNode): void => {
    node.children.sort((a, b) => a.segment.localeCompare(b.segment));
    node.children.forEach(sort);
  };
  sort(root);
  return root;
}
