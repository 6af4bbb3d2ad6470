import { describe, expect, it } from "vitest";
import { firstDue, nextDue, validateSchedule } from "./schedule.js";

const t0 = Date.parse("2026-03-28T12:00:00.000Z");

describe("schedule arithmetic", () => {
  it("at, in: once", () => {
    expect(firstDue({ kind: "at", at: "2026-03-28T13:00:00Z" }, t0)).toBe(t0 + 3_600_000);
    expect(firstDue({ kind: "in", seconds: 1.5 }, t0)).toBe(t0 + 1500);
    expect(nextDue({ kind: "in", seconds: 1.5 }, t0 + 1500, t0 + 1500)).toBeNull();
  });

  it("every: fixed rate from the add, and one catch-up run after downtime, not a burst", () => {
    const every = { kind: "every", seconds: 10 } as const;
    expect(firstDue(every, t0)).toBe(t0 + 10_000);
    expect(nextDue(every, t0 + 10_000, t0 + 10_001)).toBe(t0 + 20_000);
    // Down for an hour: the next run is the first one still in the future.
    expect(nextDue(every, t0 + 10_000, t0 + 3_600_005)).toBe(t0 + 3_610_000);
  });

  it("cron with a time zone, across a DST change without doubling or skipping", () => {
    const daily9 = { kind: "cron", cron: "0 9 * * *", timezone: "Europe/Paris" } as const;
    const first = firstDue(daily9, t0);
    expect(new Date(first ?? 0).toISOString()).toBe("2026-03-29T07:00:00.000Z"); // CEST after the change
    const second = nextDue(daily9, first ?? 0, first ?? 0);
    expect(new Date(second ?? 0).toISOString()).toBe("2026-03-30T07:00:00.000Z");
  });

  it("refuses a bad cron expression or time zone", () => {
    expect(() => { validateSchedule({ kind: "cron", cron: "not cron" }); }).toThrow();
    expect(() => { validateSchedule({ kind: "cron", cron: "* * * * *", timezone: "Mars/Olympus" }); }).toThrow();
  });
});
