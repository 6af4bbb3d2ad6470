import { readFileSync, writeFileSync } from "node:fs";

/**
 * Replace one `## <title>` section of a markdown file (the heading up to the
 * next `## ` heading) with fresh text, or append it at the end if the file has
 * none, so a benchmark can keep its section of docs/benchmarks.md current
 * without touching the hand-written rest. Headings inside code fences are not
 * headings.
 */
export function replaceSection(file: string, title: string, body: string): void {
  const lines = readFileSync(file, "utf8").split("\n");
  const heading = `## ${title}`;
  let inFence = false;
  let start = -1;
  let end = lines.length;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line.startsWith("```")) inFence = !inFence;
    if (inFence || !line.startsWith("## ")) continue;
    if (start < 0 && line.trimEnd() === heading) start = i;
    else if (start >= 0) {
      end = i;
      break;
    }
  }
  const section = [heading, "", ...body.trimEnd().split("\n"), ""];
  if (start < 0) {
    while (lines.length > 0 && lines.at(-1) === "") lines.pop();
    writeFileSync(file, [...lines, "", ...section].join("\n"));
    return;
  }
  const after = lines.slice(end);
  writeFileSync(file, [...lines.slice(0, start), ...section, ...(after.length > 0 ? after : [""])].join("\n").replace(/\n*$/, "\n"));
}
