import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll, runProcessor, uniqueName, waitFor } from "../support/processors.js";
import { openSse } from "../support/sse.js";

let gw: TestGateway;
let processor: RunningProcessor;
const root = uniquePath("metrics");

beforeAll(async () => {
  gw = await startGateway();
  processor = await runProcessor({
    name: uniqueName("echo"),
    triggers: ["ping"],
    filterSubject: `${eventsSubject(parseStreamPath(root))}.>`,
    initialState: () => null,
    reduce: () => null,
    react: () => [{ type: "pong" }],
  });
});
afterAll(async () => {
  await processor.stop();
  await gw.close();
});

/** One sample's value from Prometheus text, by metric name and a label filter. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const labelText = match[2] ?? "";
    if (Object.entries(labels).every(([key, value]) => labelText.includes(`${key}="${value}"`))) return Number(match[3]);
  }
  return undefined;
}

describe("Prometheus metrics", () => {
  it("the gateway counts appends, requests and SSE clients", async () => {
    const path = `${root}/a`;
    const sse = await openSse(`${gw.url}/streams${path}?live=sse`);
    await request(`${gw.url}/streams${path}`, { body: [{ type: "x" }, { type: "y" }] });
    const response = await fetch(`${gw.url}/metrics`);
    expect(response.headers.get("content-type")).toContain("text/plain");
    const text = await response.text();
    expect(sample(text, "agentmesh_events_appended_total", { outcome: "stored" })).toBeGreaterThanOrEqual(2);
    expect(sample(text, "agentmesh_http_requests_total", { method: "POST", route: "/streams/*", status: "201" })).toBeGreaterThanOrEqual(1);
    expect(sample(text, "agentmesh_sse_clients")).toBeGreaterThanOrEqual(1);
    expect(sample(text, "agentmesh_live_tails")).toBeGreaterThanOrEqual(1);
    expect(text).toContain("agentmesh_http_request_duration_seconds_bucket");
    expect(text).toContain("agentmesh_process_cpu_seconds_total");
    sse.abort();
  });

  it("a processor reports what it handled and its consumer lag on its health port", async () => {
    const path = `${root}/b`;
    await request(`${gw.url}/streams${path}`, { body: { type: "ping" } });
    await waitFor(async () => ((await readAll(gw.url, path)).some((e) => e.type === "pong") ? true : undefined));
    const text = await (await fetch(`http://127.0.0.1:${processor.healthPort}/metrics`)).text();
    expect(sample(text, "agentmesh_processor_events_total", { processor: processor.runtime.consumerName.replace("processor-", ""), outcome: "reacted" })).toBeGreaterThanOrEqual(1);
    expect(sample(text, "agentmesh_processor_consumer_pending", { processor: processor.runtime.consumerName.replace("processor-", "") })).toBe(0);
    expect(text).toContain("agentmesh_processor_handle_seconds_bucket");
  });
});
