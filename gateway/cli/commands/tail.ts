import type { EventEnvelope } from "../../../shared/contract/envelope.js";
import { typeMatcher } from "../../../shared/contract/type-glob.js";
import { follow, type LiveEvent } from "../follow.js";
import { colourful, eventLine, paint } from "../format.js";
import { call, CliError, streamUrl, type Target } from "../http.js";

export interface TailOptions {
  after?: string;
  at?: string;
  type?: string[];
  follow: boolean;
  json: boolean;
}

function startOf(options: TailOptions): { after: number } | { at: string } {
  if (options.after !== undefined && options.at !== undefined) throw new CliError("BAD_ARGUMENTS", "use either --after or --at, not both");
  if (options.at !== undefined) {
    const at = new Date(options.at);
    if (Number.isNaN(at.getTime())) throw new CliError("BAD_ARGUMENTS", `--at: not a time: ${options.at}`);
    return { at: at.toISOString() };
  }
  if (options.after === undefined) return { after: 0 };
  if (!/^\d+$/.test(options.after)) throw new CliError("BAD_ARGUMENTS", `--after: not an offset: ${options.after}`);
  return { after: Number(options.after) };
}

/**
 * `tail <path|prefix/**>`: what is stored, then live until interrupted (or, with --no-follow, what is stored and
 * exit). One event per line; --json prints the envelopes (one per line, for jq).
 */
export async function tailCommand(target: Target, selector: string, options: TailOptions, signal: AbortSignal): Promise<void> {
  const start = startOf(options);
  const wanted = options.type === undefined || options.type.length === 0 ? () => true : typeMatcher(options.type);
  const print = (event: LiveEvent): void => {
    if (!wanted(event.type)) return;
    process.stdout.write(`${options.json ? JSON.stringify(event) : eventLine(event)}\n`);
  };
  if (options.follow) {
    await follow({
      target,
      selector,
      start,
      onEvent: print,
      signal,
      onReconnect: (attempt, why) => {
        process.stderr.write(`${paint("yellow", `connection lost (${why}); resuming, attempt ${attempt}`, process.stderr)}\n`);
      },
    });
    return;
  }
  // What is stored, page by page; progress on a terminal for a long read.
  let query = "at" in start ? `at=${encodeURIComponent(start.at)}` : `after=${start.after}`;
  let read = 0;
  for (;;) {
    const page = await call<{ events: EventEnvelope[]; nextOffset: number; upToDate: boolean }>(target, "GET", `${streamUrl(selector)}?${query}&limit=1000`);
    for (const event of page.events) print(event);
    read += page.events.length;
    if (colourful(process.stderr) && !page.upToDate) process.stderr.write(`\r${paint("dim", `read ${read} events…`, process.stderr)}`);
    if (page.upToDate || page.events.length === 0) break;
    query = `after=${page.nextOffset}`;
  }
  if (colourful(process.stderr) && read >= 1000) process.stderr.write("\r\x1b[K");
}
