import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { buildGoTools } from "../../deploy/local/go-tools.js";
import { buildLlm } from "../../processors/llm/service.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { buildTraces } from "../../processors/traces/service.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { parseTraceparent, reactionSpanId, spanIdOf, traceIdOf } from "../../shared/traces/trace-ids.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../support/otlp-receiver.js";
import { readAll, runBuiltProcessor, uniqueName, waitFor, waitForConsumer } from "../support/processors.js";
import { bearer, JWT_SECRET, mintToken } from "../support/security.js";

/**
 * The traces processor against a real OTLP/HTTP receiver: an agent turn with a Go tool call becomes one trace
 * (GenAI conventions), the Go processor's answer joins it through `traceparent`, and `agentmesh traces export`, run
 * as a process, sends the same spans again from the stream's history. A fork's turn is a trace of the fork's own,
 * the same live and from its history.
 */

const BIN = join(process.cwd(), "gateway", "cli", "agentmesh.mjs");
const root = uniquePath("traces");
const filterSubject = `${eventsSubject(parseStreamPath(root))}.>`;
const goName = uniqueName("go-tools");

let gw: TestGateway;
let model: ModelServer;
let receiver: OtlpReceiver;
let go: ChildProcess;
const running: RunningProcessor[] = [];

beforeAll(async () => {
  const goBinary = await buildGoTools();
  gw = await startGateway();
  model = await startModelServer();
  receiver = await startOtlpReceiver();
  const llmEnv = { LLM_BASE_URL: model.baseURL, LLM_MODEL: "trace-model", LLM_MAX_RETRIES: "0", PROCESSOR_SUBJECT_FILTER: filterSubject, PROCESSOR_NAME: uniqueName("llm") };
  running.push(await runBuiltProcessor("llm", (deps) => Promise.resolve(buildLlm(deps, { ...process.env, ...llmEnv })), llmEnv));
  const tracesEnv = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, PROCESSOR_SUBJECT_FILTER: filterSubject, PROCESSOR_NAME: uniqueName("traces") };
  running.push(await runBuiltProcessor("traces", (deps) => Promise.resolve(buildTraces(deps, tracesEnv)), tracesEnv));
  go = spawn(goBinary, [], { env: { ...process.env, NATS_URL: inject("natsUrl"), PROCESSOR_NAME: goName, PROCESSOR_SUBJECT_FILTER: filterSubject }, stdio: ["ignore", "ignore", "ignore"] });
  await waitForConsumer(gw.nats, goName);
}, 120_000);

afterAll(async () => {
  const goExited = new Promise((resolve) => go.once("exit", resolve));
  go.kill("SIGTERM");
  await goExited;
  await Promise.all(running.map((p) => p.stop()));
  await receiver.close();
  await model.close();
  await gw.close();
});

async function until(path: string, predicate: (events: EventEnvelope[]) => boolean): Promise<EventEnvelope[]> {
  return waitFor(async () => {
    const events = await readAll(gw.url, path);
    return predicate(events) ? events : undefined;
  }, 20_000, `condition on ${path}`);
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, AGENTMESH_URL: gw.url, NO_COLOR: "", ...env };
  if (env.AGENTMESH_TOKEN === undefined) delete childEnv.AGENTMESH_TOKEN;
  const child = spawn(process.execPath, [BIN, ...args], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on("close", (code) => { resolve({ code, stdout, stderr }); }));
}

/** What two exports of the same turn must agree on, in a stable order. */
const comparable = (spans: readonly ReceivedSpan[]) =>
  [...spans].sort((a, b) => a.spanId.localeCompare(b.spanId)).map(({ traceId, spanId, parentSpanId, name, kind, startMs, endMs, attributes, status, links }) => ({ traceId, spanId, parentSpanId, name, kind, startMs, endMs, attributes, status, links }));

const ms = (event: EventEnvelope | undefined): number => Date.parse(event?.createdAt ?? "");

describe("traces of agent turns", () => {
  const path = `${root}/with-tools`;
  let events: EventEnvelope[] = [];
  let traceId = "";
  let spans: ReceivedSpan[] = [];

  it("exports one trace per turn, with a span for each model request, tool call and processor reaction, the Go processor's included", async () => {
    model.script = [
      { chunks: ["let me check"], toolCalls: [{ id: "call_time", name: "get_time", arguments: "{}" }, { id: "call_bad", name: "calculate", arguments: '{"expression":"2+"}' }] },
      { chunks: ["done"] },
    ];
    const input = await request<EventEnvelope>(`${gw.url}/streams${path}`, { body: { type: "agent/input-added", payload: { role: "user", content: "what time is it?" } } });
    expect(input.status).toBe(201);
    events = await until(path, (list) => list.filter((e) => e.type === "agent/llm-request-settled").length === 2);
    traceId = traceIdOf(path, input.body.offset);
    const rootSpanId = spanIdOf(path, "turn", input.body.offset);
    spans = await waitFor(() => Promise.resolve(receiver.spans.some((s) => s.spanId === rootSpanId) ? receiver.spans.filter((s) => s.traceId === traceId) : undefined), 20_000, "the turn's root span");
    const ofType = (type: string) => events.filter((e) => e.type === type);
    const [started1, started2] = ofType("agent/llm-request-started");
    const [settled1, settled2] = ofType("agent/llm-request-settled");
    const requested = ofType("agent/tool-call-requested");
    const toolSettled = ofType("agent/tool-call-settled");
    expect(toolSettled.map((e) => e.source?.processor)).toEqual([goName, goName]);

    // Every span is in the turn's trace, and every parent is a span of it: one tree under invoke_agent.
    const ids = new Set(spans.map((s) => s.spanId));
    expect(spans.filter((s) => s.parentSpanId === undefined).map((s) => s.name)).toEqual([`invoke_agent ${path}`]);
    for (const span of spans) if (span.parentSpanId !== undefined) expect(ids.has(span.parentSpanId), `${span.name}'s parent`).toBe(true);
    expect(spans.map((s) => s.name).sort()).toEqual(
      ["chat trace-model", "chat trace-model", "execute_tool calculate", "execute_tool get_time", `invoke_agent ${path}`, "react llm", "react llm", "react llm", "react llm", `react ${goName}`, `react ${goName}`].map((n) => n.replace("react llm", `react ${llmName()}`)).sort(),
    );
    const rootSpan = spans.find((s) => s.spanId === rootSpanId);
    expect(rootSpan).toMatchObject({ kind: 1, startMs: ms(input.body), endMs: ms(settled2), attributes: { "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": path, "agentmesh.turn.outcome": "answered" }, resource: { "service.name": "agentmesh" }, scope: "agentmesh-traces" });

    // Model requests: model, tokens, duration from the events' own times, outcome.
    const chat1 = spans.find((s) => s.spanId === spanIdOf(path, "chat", started1?.offset ?? 0));
    const usage = (settled1?.payload as { result: { usage: { promptTokens: number; completionTokens: number } } }).result.usage;
    expect(chat1).toMatchObject({ kind: 3, startMs: ms(started1), endMs: ms(settled1), attributes: { "gen_ai.operation.name": "chat", "gen_ai.request.model": "trace-model", "gen_ai.usage.input_tokens": usage.promptTokens, "gen_ai.usage.output_tokens": usage.completionTokens, "gen_ai.response.finish_reasons": ["tool_calls"] }, status: { code: 0 } });
    const chat2 = spans.find((s) => s.spanId === spanIdOf(path, "chat", started2?.offset ?? 0));
    expect(chat2?.attributes["gen_ai.response.finish_reasons"]).toEqual(["stop"]);
    // A request's span is under the reaction that ran it: the llm's reaction to its start.
    expect(chat1?.parentSpanId).toBe(reactionSpanId(path, llmName(), started1?.offset ?? 0));

    // Tool calls: name, call id, duration, error, under the Go processor's reaction.
    const timeCall = requested.find((e) => (e.payload as { callId: string }).callId === "call_time");
    const badCall = requested.find((e) => (e.payload as { callId: string }).callId === "call_bad");
    const timeSpan = spans.find((s) => s.spanId === spanIdOf(path, "tool", timeCall?.offset ?? 0));
    const timeSettled = toolSettled.find((e) => (e.payload as { callId: string }).callId === "call_time");
    expect(timeSpan).toMatchObject({ name: "execute_tool get_time", startMs: ms(timeCall), endMs: ms(timeSettled), attributes: { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_time", "gen_ai.tool.call.id": "call_time", "agentmesh.processor": goName }, status: { code: 0 } });
    expect(timeSpan?.attributes["error.type"]).toBeUndefined();
    const badSpan = spans.find((s) => s.spanId === spanIdOf(path, "tool", badCall?.offset ?? 0));
    expect(badSpan).toMatchObject({ attributes: { "gen_ai.tool.name": "calculate", "error.type": "tool_error" }, status: { code: 2 } });

    // The trace context travelled: the Go processor's answer carries the turn's trace and its own reaction's span,
    // whose parent is the span the request it answered named in its traceparent.
    const goContext = parseTraceparent(timeSettled?.metadata?.traceparent);
    expect(goContext).toEqual({ traceId, spanId: reactionSpanId(path, goName, timeCall?.offset ?? 0) });
    const goSpan = spans.find((s) => s.spanId === goContext?.spanId);
    expect(goSpan).toMatchObject({ name: `react ${goName}`, kind: 5, parentSpanId: parseTraceparent(timeCall?.metadata?.traceparent)?.spanId, attributes: { "agentmesh.processor": goName, "agentmesh.causation.type": "agent/tool-call-requested" } });
    expect(timeSpan?.parentSpanId).toBe(goSpan?.spanId);
    // Every reaction of the turn carries the same trace id; none needed a link to another trace.
    for (const event of events.filter((e) => e.source !== undefined)) expect(parseTraceparent(event.metadata?.traceparent)?.traceId, event.type).toBe(traceId);
    expect(spans.flatMap((s) => s.links)).toEqual([]);
  }, 60_000);

  it("exports the same trace again from the log with `agentmesh traces export`, deterministically", async () => {
    const again = await startOtlpReceiver();
    try {
      for (let i = 0; i < 2; i++) {
        const run = await cli(["traces", "export", path, "--endpoint", again.endpoint]);
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toContain("exported");
      }
      const exported = again.spans.filter((s) => s.traceId === traceId);
      expect(exported).toHaveLength(spans.length * 2);
      const [first, second] = [exported.slice(0, spans.length), exported.slice(spans.length)];
      expect(comparable(first)).toEqual(comparable(spans));
      expect(comparable(second)).toEqual(comparable(spans));
      // The standard variable works as well as the flag.
      const viaEnv = await cli(["traces", "export", path], { OTEL_EXPORTER_OTLP_ENDPOINT: again.endpoint });
      expect(viaEnv.code, viaEnv.stderr).toBe(0);
      expect(again.spans).toHaveLength(spans.length * 3);
    } finally {
      await again.close();
    }
  }, 60_000);

  it("needs the read right on the stream: the CLI reads through the gateway with the person's token", async () => {
    const secured = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET });
    const sink = await startOtlpReceiver();
    try {
      const elsewhere = await mintToken([{ path: `${root}/other`, rights: ["read"] }]);
      const refused = await cli(["traces", "export", path, "--endpoint", sink.endpoint], { AGENTMESH_URL: secured.url, AGENTMESH_TOKEN: elsewhere });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("FORBIDDEN");
      expect(sink.requests).toEqual([]);
      const reader = await mintToken([{ path, rights: ["read"] }]);
      expect((await request(`${secured.url}/streams${path}`, { headers: bearer(reader) })).status).toBe(200);
      const allowed = await cli(["traces", "export", path, "--endpoint", sink.endpoint], { AGENTMESH_URL: secured.url, AGENTMESH_TOKEN: reader });
      expect(allowed.code, allowed.stderr).toBe(0);
      expect(comparable(sink.spans.filter((s) => s.traceId === traceId))).toEqual(comparable(spans));
    } finally {
      await sink.close();
      await secured.close();
    }
  }, 60_000);

  it("prints the spans with --print, and a stream at another path gets traces of its own", async () => {
    const other = `${root}/second`;
    model.script = [{ chunks: ["hello"] }];
    const input = await request<EventEnvelope>(`${gw.url}/streams${other}`, { body: { type: "agent/input-added", payload: { role: "user", content: "hi" } } });
    await until(other, (list) => list.some((e) => e.type === "agent/llm-request-settled"));
    const printed = await cli(["traces", "export", other, "--print"]);
    expect(printed.code, printed.stderr).toBe(0);
    const lines = printed.stdout.trim().split("\n").map((line) => JSON.parse(line) as { traceId: string; name: string; parentSpanId?: string });
    // The root first, then the others by start time (a request and the reaction that ran it start together).
    expect(lines[0]?.name).toBe(`invoke_agent ${other}`);
    expect(lines.map((l) => l.name).sort()).toEqual(["chat trace-model", `invoke_agent ${other}`, `react ${llmName()}`, `react ${llmName()}`]);
    expect(new Set(lines.map((l) => l.traceId))).toEqual(new Set([traceIdOf(other, input.body.offset)]));
    expect(lines[0]?.traceId).not.toBe(traceId);
  }, 60_000);
});

describe("traces of a fork", () => {
  const source = `${root}/fork-source`;
  const to = `${root}/fork-copy`;
  const say = async (path: string, content: string) => (await request<EventEnvelope>(`${gw.url}/streams${path}`, { body: { type: "agent/input-added", payload: { role: "user", content } } })).body;
  const settledCount = (list: EventEnvelope[]) => list.filter((e) => e.type === "agent/llm-request-settled" && e.forkedFrom === undefined).length;
  const pathOf = (span: ReceivedSpan) => span.attributes["agentmesh.stream.path"];
  /** One of each span: a redelivery may send a turn twice (at least once, the same ids). */
  const unique = (list: readonly ReceivedSpan[]) => [...new Map(list.map((s) => [s.spanId, s])).values()];

  it("gives the fork's own turn one trace of the fork's, live and again from the history, whose spans all have their parents", async () => {
    // A finished turn, then a second whose request the fork will find in flight.
    model.script = [{ chunks: ["first"] }, { chunks: ["second"] }];
    const first = await say(source, "one");
    await until(source, (list) => settledCount(list) === 1);
    const second = await say(source, "two");
    const sourceEvents = await until(source, (list) => settledCount(list) === 2);
    const inFlight = sourceEvents.filter((e) => e.type === "agent/llm-request-started").at(-1);
    if (inFlight === undefined) throw new Error("no second request");
    // The source's second turn was sent live: the fork's root will link to it.
    const sourceTrace = traceIdOf(source, second.offset);
    await waitFor(() => Promise.resolve(receiver.spans.some((s) => s.spanId === spanIdOf(source, "turn", second.offset)) ? true : undefined), 20_000, "the source's second turn");

    // In the fork the llm settles the inherited request as cancelled and starts it again; this time it calls a Go tool.
    model.script = [{ toolCalls: [{ id: "call_fork", name: "get_time", arguments: "{}" }] }, { chunks: ["forked answer"] }];
    const forked = await request<{ forked: EventEnvelope }>(`${gw.url}/streams${source}/fork`, { body: { at: inFlight.offset, to } });
    expect(forked.status).toBe(201);
    const forkedAt = forked.body.forked.offset;
    const events = await until(to, (list) => settledCount(list) === 3);
    const own = events.filter((e) => e.forkedFrom === undefined);
    const traceId = traceIdOf(to, forkedAt);
    const rootSpanId = spanIdOf(to, "turn", forkedAt);

    // Every reaction of the fork, the Go processor's included, carries the fork's trace, rooted at stream/forked.
    expect(own.filter((e) => e.type === "agent/tool-call-settled").map((e) => e.source?.processor)).toEqual([goName]);
    for (const event of own.filter((e) => e.source !== undefined)) expect(parseTraceparent(event.metadata?.traceparent)?.traceId, event.type).toBe(traceId);

    const live = await waitFor(() => Promise.resolve(receiver.spans.some((s) => s.spanId === rootSpanId) ? unique(receiver.spans.filter((s) => pathOf(s) === to)) : undefined), 20_000, "the fork's turn");
    // Live, the fork sends its own turn only: the inherited ones are the source's, in the source's traces.
    expect(new Set(live.map((s) => s.traceId))).toEqual(new Set([traceId]));
    expect(live.find((s) => s.spanId === rootSpanId)?.attributes).toMatchObject({ "agentmesh.turn.outcome": "answered", "agentmesh.offset": forkedAt });
    for (const inherited of [first, second]) expect(live.some((s) => s.traceId === traceIdOf(source, inherited.offset) || s.traceId === traceIdOf(to, inherited.offset))).toBe(false);
    const ids = new Set(live.map((s) => s.spanId));
    expect(live.filter((s) => s.parentSpanId === undefined).map((s) => s.name)).toEqual([`invoke_agent ${to}`]);
    for (const span of live) if (span.parentSpanId !== undefined) expect(ids.has(span.parentSpanId), `${span.name}'s parent`).toBe(true);
    expect(live.map((s) => s.name).sort()).toEqual(["chat trace-model", "chat trace-model", "execute_tool get_time", `invoke_agent ${to}`, `react ${goName}`, `react ${llmName()}`, `react ${llmName()}`, `react ${llmName()}`, `react ${llmName()}`].sort());
    // The only link is the root's, to the source's turn it goes on from, which the source sent.
    expect(live.flatMap((s) => s.links)).toEqual([{ traceId: sourceTrace, spanId: spanIdOf(source, "turn", second.offset) }]);
    const chat = live.find((s) => s.name === "chat trace-model");
    expect(chat?.attributes).toMatchObject({ "gen_ai.provider.name": "openai", "gen_ai.request.model": "trace-model" });
    expect(chat?.attributes["server.address"]).toBeUndefined();

    // `traces export` of the fork sends exactly what the processor sent, and nothing of the inherited turns.
    const again = await startOtlpReceiver();
    try {
      const run = await cli(["traces", "export", to, "--endpoint", again.endpoint]);
      expect(run.code, run.stderr).toBe(0);
      expect(comparable(again.spans)).toEqual(comparable(live));
    } finally {
      await again.close();
    }
  }, 90_000);
});

function llmName(): string {
  const llm = running[0];
  if (llm === undefined) throw new Error("the llm processor is not running");
  return llm.runtime.consumerName.replace(/^processor-/, "");
}
