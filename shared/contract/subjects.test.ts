import { describe, expect, it } from "vitest";
import { AgentmeshError } from "./errors.js";
import { eventsSubject, liveSubject, parseStreamPath, parseStreamSelector, pathOfSubject, selectorSubject, subjectMatches } from "./subjects.js";

describe("stream paths and subjects", () => {
  it("maps a path to one subject token per segment and back", () => {
    const path = parseStreamPath("/agents/bot-1");
    expect(eventsSubject(path)).toBe("events.agents.bot-1");
    expect(liveSubject(path)).toBe("live.agents.bot-1");
    expect(pathOfSubject("events.agents.bot-1")).toBe("/agents/bot-1");
  });

  it("escapes the characters NATS forbids in a token, reversibly", () => {
    for (const raw of ["/a.b/c", "/x~2E/y", "/~/.../~7E.", "/A-Z_09.~", "/v1.2.3/~x~"]) {
      const path = parseStreamPath(raw);
      const subject = eventsSubject(path);
      expect(subject.split(".").length).toBe(raw.split("/").length);
      expect(pathOfSubject(subject)).toBe(raw);
    }
  });

  it("keeps distinct paths on distinct subjects", () => {
    const raws = ["/a.b", "/a/b", "/a~2Eb", "/a~7E2Eb", "/a~b"];
    const subjects = new Set(raws.map((r) => eventsSubject(parseStreamPath(r))));
    expect(subjects.size).toBe(raws.length);
  });

  it.each([
    ["", "no leading slash"],
    ["/", "no segment"],
    ["a/b", "relative"],
    ["/a//b", "empty segment"],
    ["/a/", "trailing slash"],
    ["/a/./b", "dot segment"],
    ["/a/../b", "dot-dot segment"],
    ["/a b", "space"],
    ["/a*b", "wildcard char"],
    ["/a>b", "wildcard char"],
    ["/caf%C3%A9", "percent-encoded"],
    ["/" + Array.from({ length: 17 }, () => "s").join("/"), "17 segments"],
    ["/" + "x".repeat(1023), "1024 characters"],
  ])("refuses %j (%s)", (raw) => {
    expect(() => parseStreamPath(raw)).toThrow(AgentmeshError);
  });

  it("accepts 16 segments and 1023 characters", () => {
    expect(parseStreamPath("/" + Array.from({ length: 16 }, () => "s").join("/"))).toBeTruthy();
    expect(parseStreamPath("/" + "x".repeat(1022))).toHaveLength(1023);
  });

  it("turns /** selectors into wildcard filters", () => {
    expect(selectorSubject(parseStreamSelector("/agents/**"), "events")).toBe("events.agents.>");
    expect(selectorSubject(parseStreamSelector("/agents/**"), "live")).toBe("live.agents.>");
    expect(selectorSubject(parseStreamSelector("/**"), "events")).toBe("events.>");
    expect(parseStreamSelector("/agents/bot")).toEqual({ kind: "stream", path: "/agents/bot" });
  });

  it("does not claim subjects that are not ours", () => {
    expect(pathOfSubject("other.a")).toBeNull();
    expect(pathOfSubject("events")).toBeNull();
    expect(pathOfSubject("events.a~zz")).toBeNull();
  });
});

describe("subjectMatches", () => {
  it("takes what NATS would deliver through the filter", () => {
    expect(subjectMatches("events.a.>", "events.a.b")).toBe(true);
    expect(subjectMatches("events.a.>", "events.a.b.c")).toBe(true);
    expect(subjectMatches("events.a.>", "events.a")).toBe(false);
    expect(subjectMatches("events.*.b", "events.x.b")).toBe(true);
    expect(subjectMatches("events.*.b", "events.x.c")).toBe(false);
    expect(subjectMatches("events.a", "events.a")).toBe(true);
    expect(subjectMatches("events.a", "events.a.b")).toBe(false);
    expect(subjectMatches("events.ab.>", "events.a.b")).toBe(false);
  });
});
