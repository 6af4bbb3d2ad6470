import type { Pool } from "undici";

/**
 * The soak's writers: appends at a steady rate, open loop. Append `i` is due
 * at `start + i / rate` whatever the previous answers did, so a slow gateway
 * shows up as latency (and as lag, if even the sending falls behind) instead
 * of silently lowering the rate. One in ten appends is an `agent/input-added`
 * to an agent stream (the llm processor answers it); the rest are plain
 * events on the other streams. Every append carries an idempotency key.
 *
 * Why not autocannon: its `overallRate` is enforced per connection and per
 * one-second window (a connection sends its quota back to back, then waits
 * for the next second), so 200/s arrives as one burst each second; and it is
 * closed loop, so a slowing gateway lowers the offered rate.
 */

export interface StreamSet {
  /** Agent streams: every tenth append goes to one of these. */
  agents: string[];
  plain: string[];
  all: string[];
}

/** `count` streams, a tenth of them (at least one) agent streams. */
export function soakStreams(count: number, prefix = "/soak"): StreamSet {
  const agentCount = Math.max(1, Math.round(count / 10));
  const pad = (n: number): string => String(n).padStart(3, "0");
  const agents = Array.from({ length: agentCount }, (_, i) => `${prefix}/agents/a-${pad(i)}`);
  const plain = Array.from({ length: Math.max(0, count - agentCount) }, (_, i) => `${prefix}/plain/p-${pad(i)}`);
  return { agents, plain, all: [...agents, ...plain] };
}

export function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T;
}

const PLAIN_DATA = "x".repeat(180);

export interface AppendWindow {
  ok: number;
  errors: number;
  /** Agent inputs among `ok`. */
  agentInputs: number;
  latenciesMs: number[];
  /** How late the latest-sent append of the window left, after its due time: the load generator falling behind. */
  maxLagMs: number;
}

function emptyWindow(): AppendWindow {
  return { ok: 0, errors: 0, agentInputs: 0, latenciesMs: [], maxLagMs: 0 };
}

export class PacedAppender {
  /** Offsets of acknowledged appends, per stream. */
  readonly acked = new Map<string, number[]>();
  /** Idempotency keys of every append sent, per stream: what a stream may hold from the soak. */
  readonly sentKeys = new Map<string, Set<string>>();
  readonly errorSamples: string[] = [];
  readonly statusCounts: Record<string, number> = {};
  private window = emptyWindow();
  private next = 0;
  private inFlight = 0;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private drained: (() => void) | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly streams: StreamSet,
    private readonly rate: number,
    private readonly maxInFlight = 512,
  ) {}

  start(): void {
    this.startedAt = performance.now();
    this.tick();
  }

  /** Stop sending; resolves when every append in flight is answered. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => {
      this.drained = resolve;
    });
  }

  get sent(): number {
    return this.next;
  }

  takeWindow(): AppendWindow {
    const window = this.window;
    this.window = emptyWindow();
    return window;
  }

  private dueAt(i: number): number {
    return this.startedAt + (i * 1000) / this.rate;
  }

  private tick(): void {
    if (this.stopped) return;
    const now = performance.now();
    while (this.dueAt(this.next) <= now && this.inFlight < this.maxInFlight) {
      this.window.maxLagMs = Math.max(this.window.maxLagMs, now - this.dueAt(this.next));
      this.send(this.next++);
    }
    // Behind with the maximum in flight: the next answer calls tick() again.
    if (this.inFlight >= this.maxInFlight) return;
    this.timer = setTimeout(() => { this.tick(); }, Math.max(0, this.dueAt(this.next) - performance.now()));
  }

  private send(i: number): void {
    const agent = i % 10 === 0;
    const path = pick(agent ? this.streams.agents : this.streams.plain.length > 0 ? this.streams.plain : this.streams.agents);
    const idempotencyKey = `soak-${i}`;
    const body = agent
      ? { type: "agent/input-added", payload: { role: "user", content: `soak input ${i}` }, idempotencyKey }
      : { type: "soak/tick", payload: { i, data: PLAIN_DATA }, idempotencyKey };
    let keys = this.sentKeys.get(path);
    if (keys === undefined) this.sentKeys.set(path, (keys = new Set()));
    keys.add(idempotencyKey);
    this.inFlight += 1;
    const started = performance.now();
    void this.pool
      .request({ method: "POST", path: `/streams${path}`, headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
      .then(async (reply) => {
        const text = await reply.body.text();
        this.statusCounts[reply.statusCode] = (this.statusCounts[reply.statusCode] ?? 0) + 1;
        if (reply.statusCode < 200 || reply.statusCode >= 300) {
          this.error(`${reply.statusCode} ${text.slice(0, 200)}`);
          return;
        }
        this.window.ok += 1;
        if (agent) this.window.agentInputs += 1;
        this.window.latenciesMs.push(performance.now() - started);
        const offset = (JSON.parse(text) as { offset: number }).offset;
        let offsets = this.acked.get(path);
        if (offsets === undefined) this.acked.set(path, (offsets = []));
        offsets.push(offset);
      })
      .catch((err: unknown) => {
        this.statusCounts.network = (this.statusCounts.network ?? 0) + 1;
        this.error(err instanceof Error ? err.message : String(err));
      })
      .finally(() => {
        this.inFlight -= 1;
        if (this.stopped) {
          if (this.inFlight === 0) this.drained?.();
        } else if (this.inFlight === this.maxInFlight - 1) this.tick();
      });
  }

  private error(description: string): void {
    this.window.errors += 1;
    if (this.errorSamples.length < 20) this.errorSamples.push(description);
  }
}
