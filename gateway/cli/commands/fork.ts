import type { EventEnvelope } from "../../../shared/contract/envelope.js";
import { eventLine } from "../format.js";
import { call, CliError, streamUrl, type Target } from "../http.js";

export interface ForkOptions {
  at: string;
  to: string;
  subscriptions: boolean;
  json: boolean;
}

/** `fork <path> --at <offset> --to <path>`: a new agent whose history is this one's up to the event at `--at`. */
export async function forkCommand(target: Target, path: string, options: ForkOptions): Promise<void> {
  if (!/^\d{1,16}$/.test(options.at) || Number(options.at) < 1) throw new CliError("BAD_ARGUMENTS", `--at: not an offset: ${options.at}`);
  const to = options.to.startsWith("/") ? options.to : `/${options.to}`;
  const reply = await call<{ forked: EventEnvelope; events: number }>(target, "POST", streamUrl(path, "/fork"), { at: Number(options.at), to, subscriptions: options.subscriptions });
  if (options.json) {
    process.stdout.write(`${JSON.stringify(reply)}\n`);
    return;
  }
  process.stdout.write(`${to}: ${reply.events} events inherited from ${path} through offset ${options.at}\n${eventLine(reply.forked)}\n`);
}
