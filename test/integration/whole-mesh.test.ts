import { describe, expect, it } from "vitest";
import { runDemo } from "../../deploy/local/demo-run.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { freePort } from "../support/ports.js";

describe("the whole mesh, every service its own process", () => {
  it("answers a question with a Go tool and a Python tool, in exactly this sequence of events", async () => {
    const seen: EventEnvelope[] = [];
    const { events, answer } = await runDemo({ gatewayPort: await freePort(), onEvent: (event) => seen.push(event), timeoutMs: 60_000 });
    expect(events.map((e) => e.type)).toEqual([
      "agent/configured",
      "agent/input-added",
      "agent/llm-request-started",
      "agent/llm-request-settled",
      "agent/tool-call-requested",
      "agent/tool-call-requested",
      "agent/tool-call-requested",
      "schedule/added",
      "schedule/added",
      "schedule/added",
      "agent/tool-call-settled",
      "agent/tool-call-settled",
      "agent/tool-call-settled",
      "agent/llm-request-started",
      "agent/llm-request-settled",
    ]);
    const settledBy = Object.fromEntries(events.filter((e) => e.type === "agent/tool-call-settled").map((e) => [(e.payload as { callId: string }).callId, e.source?.processor]));
    expect(settledBy).toEqual({ call_time: "go-tools", call_calc: "go-tools", call_word: "python-http" });
    expect(answer).toMatch(/^It is \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(UTC\)\. 6\*7 = 42\. A mesh is a network of connected parts\.$/);
    expect(seen).toEqual(events);
  }, 120_000);
});
