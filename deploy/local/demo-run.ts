import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { startModelServer, type RecordedRequest, type ScriptedAnswer } from "../../test/support/model-server.js";
import { buildGoTools } from "./go-tools.js";
import { DEFAULT_SERVICES, projectRoot, startMesh, type ServiceSpec } from "./mesh.js";

export const DEMO_STREAM = "/demo/agent-1";
export const DEMO_QUESTION = "What time is it, what is 6*7, and what does mesh mean?";

export interface DemoOptions {
  gatewayPort: number;
  natsPort?: number;
  /** Every stored event as it arrives on the live tail. */
  onEvent: (event: EventEnvelope) => void;
  onLine?: (service: string, line: string) => void;
  timeoutMs?: number;
  /** Aborting stops the demo (and the whole mesh) early. */
  signal?: AbortSignal;
}

/**
 * The scripted model: first it asks for the three tools (two in Go, one in
 * Python); once their results are in, it answers from them.
 */
function scriptedModel(request: RecordedRequest): ScriptedAnswer {
  const results = request.messages.filter((m) => m.role === "tool").map((m) => JSON.parse(m.content ?? "null") as Record<string, unknown>);
  if (results.length === 0) {
    return {
      chunks: ["Let me check."],
      toolCalls: [
        { id: "call_time", name: "get_time", arguments: "{}" },
        { id: "call_calc", name: "calculate", arguments: '{"expression":"6*7"}' },
        { id: "call_word", name: "lookup_word", arguments: '{"word":"mesh"}' },
      ],
    };
  }
  const time = results.find((r) => "utc" in r)?.utc;
  const value = results.find((r) => "value" in r)?.value;
  const definition = results.find((r) => "definition" in r)?.definition;
  const answer = `It is ${String(time)} (UTC). 6*7 = ${String(value)}. A mesh is ${String(definition)}.`;
  return { chunks: answer.match(/.{1,8}/g) ?? [answer], chunkDelayMs: 5 };
}

async function waitForReady(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms`);
}

/**
 * Start the whole mesh (each service its own process, the Go and Python
 * processors included) against a scripted model server, drive one
 * conversation that uses tools from both, and return the log and the answer.
 */
export async function runDemo(options: DemoOptions): Promise<{ events: EventEnvelope[]; answer: string }> {
  const model = await startModelServer();
  model.fallback = scriptedModel;
  const goTools = await buildGoTools();
  const dataDir = mkdtempSync(join(tmpdir(), "agentmesh-demo-"));
  const gatewayUrl = `http://127.0.0.1:${options.gatewayPort}`;
  const ready = new Set<string>();
  // Filled in by the exit callback; read through a function, so the compiler does not assume it stays null.
  const crash = { reason: null as string | null };
  const services: ServiceSpec[] = [
    ...DEFAULT_SERVICES,
    { name: "go-tools", command: goTools, args: [] },
    { name: "python-http", command: "python3", args: [join(projectRoot, "processors/examples/python-http/processor.py")], env: { AGENTMESH_URL: gatewayUrl, WATCH: "/demo/**" } },
  ];
  const mesh = await startMesh({
    ...(options.natsPort === undefined ? {} : { natsPort: options.natsPort }),
    dataDir,
    services,
    env: { AUTH: "off", ...process.env, GATEWAY_PORT: String(options.gatewayPort), LLM_BASE_URL: model.baseURL, LLM_MODEL: "scripted-demo-model", LOG_LEVEL: process.env.LOG_LEVEL ?? "info" },
    onLine: (service, line) => {
      if (line.includes("processor running") || line.includes("tailing")) ready.add(service);
      options.onLine?.(service, line);
    },
    onUnexpectedExit: (service, code) => {
      crash.reason = `${service} exited (${String(code)})`;
    },
  });
  const controller = new AbortController();
  try {
    await waitForReady(`${gatewayUrl}/readyz`, 30_000);
    const deadline = Date.now() + 30_000;
    while (!["llm", "go-tools", "python-http"].every((s) => ready.has(s))) {
      const crashed = ((): string | null => crash.reason)();
      if (crashed !== null) throw new Error(crashed);
      if (Date.now() > deadline) throw new Error(`not ready in time: ${["llm", "go-tools", "python-http"].filter((s) => !ready.has(s)).join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const events: EventEnvelope[] = [];
    const { createParser } = await import("eventsource-parser");
    let finish: ((answer: string) => void) | undefined;
    const finished = new Promise<string>((resolve) => (finish = resolve));
    const parser = createParser({
      onEvent: (message) => {
        if (message.id === undefined) return;
        const event = JSON.parse(message.data) as EventEnvelope;
        events.push(event);
        options.onEvent(event);
        const result = (event.payload as { result?: { status: string; text: string; toolCalls: unknown[] } }).result;
        if (event.type === "agent/llm-request-settled" && result?.status === "succeeded" && result.toolCalls.length === 0) finish?.(result.text);
      },
    });
    const response = await fetch(`${gatewayUrl}/streams${DEMO_STREAM}?live=sse`, { signal: controller.signal });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    void (async () => {
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    })().catch(() => undefined);

    const post = (body: unknown) => fetch(`${gatewayUrl}/streams${DEMO_STREAM}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    await post({
      type: "agent/configured",
      payload: {
        systemPrompt: "Answer with the tools.",
        tools: [
          { name: "get_time", description: "The current UTC time (Go processor)" },
          { name: "calculate", description: "Evaluate arithmetic (Go processor)", parameters: { type: "object", properties: { expression: { type: "string" } }, required: ["expression"] } },
          { name: "lookup_word", description: "Define a word (Python processor)", parameters: { type: "object", properties: { word: { type: "string" } }, required: ["word"] } },
        ],
      },
    });
    await post({ type: "agent/input-added", payload: { role: "user", content: DEMO_QUESTION } });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => { reject(new Error("the demo conversation did not finish in time")); }, options.timeoutMs ?? 60_000).unref());
    const aborted = new Promise<never>((_, reject) => options.signal?.addEventListener("abort", () => { reject(new Error("stopped")); }, { once: true }));
    const answer = await Promise.race([finished, timeout, aborted]);
    return { events, answer };
  } finally {
    controller.abort();
    await mesh.stop();
    await model.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
