import { useMemo, useState } from "react";
import { Link } from "wouter";
import { api } from "../api/client.js";
import { usePolling } from "../ui/use-polling.js";
import { useToken } from "../api/token.js";
import type { StreamSummary } from "../api/types.js";
import { treeOf, type TreeNode } from "./tree.js";

const REFRESH_MS = 2_000;
const NONE: StreamSummary[] = [];

function ago(iso: string | null): string {
  if (iso === null) return "";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds >= 86_400) return `${Math.round(seconds / 86_400)}d ago`;
  if (seconds >= 3_600) return `${Math.round(seconds / 3_600)}h ago`;
  return seconds < 60 ? `${seconds}s ago` : `${Math.round(seconds / 60)}m ago`;
}

function Node({ node, current }: { node: TreeNode; current: string | null }) {
  return (
    <li>
      {node.stream === null ? (
        <span className="tree-folder">{node.segment}/</span>
      ) : (
        <Link href={`/streams${node.path}`} className={`tree-stream${current === node.path ? " selected" : ""}`} data-path={node.path}>
          <span className="name">{node.segment}</span>
          <span className="count" title={`last offset ${node.stream.lastOffset}`}>
            {node.stream.eventCount}
          </span>
          {node.stream.paused ? <span className="badge paused">paused</span> : null}
          <span className="muted small" title={node.stream.lastEventAt ?? ""}>
            {ago(node.stream.lastEventAt)}
          </span>
        </Link>
      )}
      {node.children.length === 0 ? null : (
        <ul>
          {node.children.map((child) => (
            <Node key={child.path} node={child} current={current} />
          ))}
        </ul>
      )}
    </li>
  );
}

/** Enough for any tree a person reads; beyond it the tree says it is cut short. */
const MAX_LISTED = 10_000;

/**
 * The streams whose path starts with what was typed: the gateway selects by whole segments, so `/big/tw` is asked as
 * `/big` and narrowed here. Every page is followed (up to MAX_LISTED).
 */
async function listAll(typed: string): Promise<{ streams: StreamSummary[]; truncated: boolean }> {
  const wanted = typed.trim() === "" ? "" : `/${typed.trim().replace(/^\/+/, "")}`;
  const whole = wanted.endsWith("/") ? wanted.replace(/\/+$/, "") : wanted.slice(0, Math.max(0, wanted.lastIndexOf("/")));
  const streams: StreamSummary[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.listStreams(whole === "" ? null : whole, cursor);
    streams.push(...page.streams.filter((stream) => stream.path.startsWith(wanted)));
    cursor = page.nextCursor;
  } while (cursor !== undefined && streams.length < MAX_LISTED);
  return { streams, truncated: cursor !== undefined };
}

/** Every stream the token may read, as a tree with event counts and last activity, refreshed every 2 s; filter by prefix. */
export function StreamTree({ current }: { current: string | null }) {
  const token = useToken();
  const [prefix, setPrefix] = useState("");
  const { value, error } = usePolling(() => listAll(prefix), REFRESH_MS, [prefix, token]);
  const streams = value?.streams ?? NONE;
  const tree = useMemo(() => treeOf(streams), [streams]);
  return (
    <nav className="stream-tree" aria-label="Streams">
      <input aria-label="Prefix filter" placeholder="prefix: /agents" value={prefix} onChange={(e) => { setPrefix(e.target.value); }} />
      {error === null ? null : (
        <p className="error small" role="alert">
          {error}
        </p>
      )}
      {streams.length === 0 && error === null ? <p className="muted small">No streams yet.</p> : null}
      {value?.truncated === true ? <p className="muted small">The first {MAX_LISTED} streams: type a prefix to see others.</p> : null}
      <ul>
        {tree.children.map((child) => (
          <Node key={child.path} node={child} current={current} />
        ))}
      </ul>
    </nav>
  );
}
