import { randomBytes } from "node:crypto";
import { inject } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { startProcessor, type ProcessorDeps, type RunningProcessor } from "../../processors/runtime/run-processor.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { Processor } from "../../processors/runtime/runtime.js";
import { ConsumerNames } from "../../shared/contract/wire.js";
import { request, TEST_SECRETS_KEYS } from "./gateway.js";

/** Run a processor in this process against the test run's nats-server, as its main.ts would. */
export function runProcessor<S>(processor: Processor<S>, env: Record<string, string> = {}): Promise<RunningProcessor> {
  return startProcessor(() => processor, processor.name, { NATS_URL: inject("natsUrl"), LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "error", HEALTH_PORT: "0", SECRETS_KEYS: TEST_SECRETS_KEYS, ...env });
}

/** Run a processor whose wiring needs the runtime's dependencies (the scheduler, the webhook pusher). */
export function runBuiltProcessor<S>(name: string, build: (deps: ProcessorDeps) => Promise<Processor<S>>, env: Record<string, string> = {}): Promise<RunningProcessor> {
  return startProcessor(build, name, { NATS_URL: inject("natsUrl"), LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "error", HEALTH_PORT: "0", SECRETS_KEYS: TEST_SECRETS_KEYS, ...env });
}

/** What a tool owner is asked: one agent/tool-call-requested. */
export interface RequestedCall {
  callId: string;
  name: string;
  arguments: string;
}

/**
 * A tool owner, as any processor would be: settles each call `answer` has a result for (undefined: not its tool,
 * left to others), on the streams under `filterSubject`.
 */
export function toolOwner(name: string, filterSubject: string, answer: (call: RequestedCall) => unknown): Processor<null> {
  return {
    name,
    triggers: ["agent/tool-call-requested"],
    filterSubject,
    initialState: () => null,
    reduce: () => null,
    react: ({ event }) => {
      const call = event.payload as RequestedCall;
      const result = answer(call);
      return result === undefined ? [] : [{ type: "agent/tool-call-settled", payload: { callId: call.callId, result } }];
    },
  };
}

/** A processor name no other test uses (durable consumers are per name). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

export async function readAll(baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<EventEnvelope[]> {
  const events: EventEnvelope[] = [];
  let after = 0;
  for (;;) {
    const page = await request<{ events: EventEnvelope[]; nextOffset: number; upToDate: boolean }>(`${baseUrl}/streams${path}?after=${after}&limit=1000`, { headers });
    if (page.status === 404) return events;
    if (page.status !== 200) throw new Error(`read ${path}: ${page.status} ${JSON.stringify(page.body)}`);
    events.push(...page.body.events);
    after = page.body.nextOffset;
    if (page.body.upToDate) return events;
  }
}

export async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    // A probe that throws (a 503 while NATS restarts) counts as "not yet".
    const value = await probe().catch((err: unknown) => {
      lastError = err;
      return undefined;
    });
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`, { cause: lastError });
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Wait until a processor's durable consumer exists (it then receives every new event). */
export function waitForConsumer(nats: Nats, processorName: string, timeoutMs = 20_000): Promise<true> {
  return waitFor(async () => {
    for await (const info of nats.jsm.consumers.list(nats.streamName)) if (info.name === ConsumerNames.processor(processorName)) return true as const;
    return undefined;
  }, timeoutMs, `consumer of ${processorName}`);
}

export interface SettledConsumer {
  /** Stream sequence of the last event the consumer saw acknowledged, with nothing before it outstanding. */
  ackFloor: number;
}

/**
 * Wait until a durable consumer has nothing left: every event in its filter delivered (`num_pending` 0) and
 * acknowledged (`num_ack_pending` 0, which also counts events waiting for a redelivery), at least through the
 * stream sequence `through`. A processor acks an event only after its reaction is stored, and its reactions are in
 * its own filter, so once its consumer is settled it will append nothing more until new events arrive: this is
 * the positive signal that "nothing more happens", instead of a sleep.
 */
export function waitForSettledConsumer(nats: Nats, consumerName: string, through = 0, timeoutMs = 20_000): Promise<SettledConsumer> {
  let last = "no answer";
  return waitFor(async () => {
    const info = await nats.jsm.consumers.info(nats.streamName, consumerName);
    const ackFloor = info.ack_floor.stream_seq;
    last = `num_pending ${info.num_pending}, num_ack_pending ${info.num_ack_pending}, ack floor ${ackFloor}, delivered ${info.delivered.stream_seq}`;
    return info.num_pending === 0 && info.num_ack_pending === 0 && ackFloor >= through ? { ackFloor } : undefined;
  }, timeoutMs, `consumer ${consumerName} settled through ${through}`).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)} (last seen: ${last})`, { cause: err });
  });
}

/** The same for a processor, by its name. */
export function waitForSettledProcessor(nats: Nats, processorName: string, through = 0, timeoutMs = 20_000): Promise<SettledConsumer> {
  return waitForSettledConsumer(nats, ConsumerNames.processor(processorName), through, timeoutMs);
}
