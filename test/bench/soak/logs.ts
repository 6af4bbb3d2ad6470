/**
 * Counts what the services and nats-server log at warning level and above.
 * Services log pino JSON with the level as a label (`"level":"error"`, see
 * shared/service/logger.ts) or, from other loggers, as a number; nats-server logs
 * `[WRN]` and `[ERR]` lines. Anything else on a service's output that is not
 * JSON (a crash's stack trace) is counted as unparsed.
 */

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

export interface LogCounts {
  /** Level >= 50 (error, fatal) per service. */
  errors: Record<string, number>;
  /** Level 40 per service. */
  warnings: Record<string, number>;
  /** Lines that are not JSON, per service. */
  unparsed: Record<string, number>;
}

export interface LogGroup {
  service: string;
  level: string;
  msg: string;
  /** The error's message or code, when the line carries one. */
  err: string;
  count: number;
  firstAt: string;
}

interface ParsedLine {
  level?: unknown;
  msg?: unknown;
  time?: unknown;
  err?: { message?: unknown; code?: unknown; type?: unknown; cause?: { message?: unknown; code?: unknown } };
}

function levelOf(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "string") return LEVELS[value] ?? 0;
  return 0;
}

function text(value: unknown): string {
  return typeof value === "string" ? value : typeof value === "number" ? String(value) : "";
}

function emptyCounts(): LogCounts {
  return { errors: {}, warnings: {}, unparsed: {} };
}

function bump(counts: Record<string, number>, service: string): void {
  counts[service] = (counts[service] ?? 0) + 1;
}

export class LogTally {
  private window = emptyCounts();
  private readonly total = emptyCounts();
  private readonly groups = new Map<string, LogGroup>();
  private readonly samples: string[] = [];

  /** One line a service wrote on stdout or stderr. */
  serviceLine(service: string, line: string): void {
    if (!line.startsWith("{")) {
      if (line.trim() === "") return;
      bump(this.window.unparsed, service);
      bump(this.total.unparsed, service);
      if (this.samples.length < 20) this.samples.push(`${service}: ${line.slice(0, 300)}`);
      return;
    }
    let parsed: ParsedLine;
    try {
      parsed = JSON.parse(line) as ParsedLine;
    } catch {
      bump(this.window.unparsed, service);
      bump(this.total.unparsed, service);
      return;
    }
    const level = levelOf(parsed.level);
    if (level < 40) return;
    const err = parsed.err;
    // Numbers (offsets, sequences, durations) would make every line its own group.
    const errText = [text(err?.code), text(err?.message), text(err?.cause?.code), text(err?.cause?.message)].filter((s) => s !== "").join(" / ").replace(/\d+/g, "N").slice(0, 300);
    this.count(service, level, text(parsed.msg), errText, text(parsed.time));
  }

  /** One line nats-server logged. */
  natsLine(line: string): void {
    const level = line.includes("[ERR]") || line.includes("[FTL]") ? 50 : line.includes("[WRN]") ? 40 : 0;
    if (level === 0) return;
    // Drop the "[pid] date time [WRN] " prefix so repeats of one message group together.
    const msg = line.replace(/^\[\d+\]\s+\S+\s+\S+\s+\[\w+\]\s+/, "").replace(/\d+/g, "N");
    this.count("nats-server", level, msg.slice(0, 200), "", new Date().toISOString());
  }

  private count(service: string, level: number, msg: string, err: string, time: string): void {
    const counts = level >= 50 ? "errors" : "warnings";
    bump(this.window[counts], service);
    bump(this.total[counts], service);
    const key = `${service}\u0000${String(level)}\u0000${msg}\u0000${err}`;
    const group = this.groups.get(key);
    if (group === undefined) this.groups.set(key, { service, level: level >= 50 ? "error" : "warn", msg, err, count: 1, firstAt: time });
    else group.count += 1;
  }

  /** Counts since the last call. */
  takeWindow(): LogCounts {
    const window = this.window;
    this.window = emptyCounts();
    return window;
  }

  totals(): LogCounts {
    return structuredClone(this.total);
  }

  /** Distinct (service, level, message, error) lines, most frequent first. */
  topGroups(limit = 30): LogGroup[] {
    return [...this.groups.values()].sort((a, b) => b.count - a.count).slice(0, limit);
  }

  unparsedSamples(): string[] {
    return [...this.samples];
  }
}

export function sumCounts(counts: Record<string, number>): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}
