import { describe, expect, it } from "vitest";
import type { EventEnvelope } from "../contract/envelope.js";
import { initialSchedules, reduceSchedules, type SchedulesState } from "./schedules.js";

let offset = 0;
const event = (type: string, payload: unknown, source?: { processor: string; causationOffset: number }): EventEnvelope => ({
  streamPath: "/s",
  offset: ++offset,
  type,
  payload,
  createdAt: new Date(1_700_000_000_000 + offset).toISOString(),
  ...(source === undefined ? {} : { source }),
});
const fold = (events: EventEnvelope[]): SchedulesState => events.reduce(reduceSchedules, initialSchedules());

describe("the schedules a stream's log states", () => {
  it("counts firings by the scheduler's causation, and a one-shot schedule is done once it fired", () => {
    const once = event("schedule/added", { slug: "once", append: { type: "tick" }, schedule: { kind: "in", seconds: 1 } });
    const every = event("schedule/added", { slug: "every", append: { type: "tick" }, schedule: { kind: "every", seconds: 60 } });
    const state = fold([
      once,
      every,
      event("tick", {}, { processor: "scheduler", causationOffset: once.offset }),
      event("tick", {}, { processor: "scheduler", causationOffset: every.offset }),
      event("tick", {}, { processor: "scheduler", causationOffset: every.offset }),
      // Another processor's reaction to the same offset is not a firing.
      event("tick", {}, { processor: "llm", causationOffset: every.offset }),
    ]);
    expect(state.schedules.once).toMatchObject({ fired: 1, done: true, cancelledAt: null });
    expect(state.schedules.every).toMatchObject({ fired: 2, done: false });
  });

  it("marks a cancelled schedule once, and adding a slug again starts it afresh", () => {
    const added = event("schedule/added", { slug: "s", append: { type: "tick" }, schedule: { kind: "every", seconds: 5 } });
    const cancelled = event("schedule/cancelled", { slug: "s" });
    const state = fold([added, cancelled, event("schedule/cancelled", { slug: "s" })]);
    expect(state.schedules.s?.cancelledAt?.offset).toBe(cancelled.offset);
    const again = fold([added, cancelled, event("schedule/added", { slug: "s", append: { type: "tock" }, schedule: { kind: "every", seconds: 5 } })]);
    expect(again.schedules.s).toMatchObject({ cancelledAt: null, fired: 0, append: { type: "tock" } });
  });
});
