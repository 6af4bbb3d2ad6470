import { prettyFactory } from "pino-pretty";

type Mode = "pretty" | "json";

export interface LineFormatter {
  (service: string, line: string): string;
  /** For lines that are not our JSON (nats-server's own log). */
  plain(service: string, line: string): string;
  mode: Mode;
}

/**
 * Child processes log one JSON object per line (pino). On a terminal the
 * launcher shows them readably; piped elsewhere they pass through untouched so
 * tools can still parse them.
 */
export function createLineFormatter(): LineFormatter {
  const pretty = prettyFactory({ colorize: process.stdout.isTTY, ignore: "pid,hostname,service", messageFormat: "[{service}] {msg}", translateTime: "HH:MM:ss.l", singleLine: true });
  const format = ((service: string, line: string): string => {
    if (format.mode === "json" || !line.startsWith("{")) return format.mode === "json" ? line : `[${service}] ${line}`;
    return pretty(line).trimEnd();
  }) as LineFormatter;
  format.plain = (service, line) => (format.mode === "json" ? JSON.stringify({ service, msg: line }) : `[${service}] ${line}`);
  format.mode = "json";
  return format;
}
