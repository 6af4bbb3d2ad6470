import { describe, expect, it } from "vitest";
import { parseStreamPath, parseStreamSelector } from "../../shared/contract/subjects.js";
import { allows, patternCovers, patternMatchesPath } from "./grants.js";

const path = (raw: string) => parseStreamPath(raw);

describe("grant patterns", () => {
  it("matches exact paths, * segments and /** subtrees", () => {
    expect(patternMatchesPath("/agents/bot-1", path("/agents/bot-1"))).toBe(true);
    expect(patternMatchesPath("/agents/bot-1", path("/agents/bot-10"))).toBe(false);
    expect(patternMatchesPath("/agents/*/inbox", path("/agents/x/inbox"))).toBe(true);
    expect(patternMatchesPath("/agents/*/inbox", path("/agents/x/outbox"))).toBe(false);
    expect(patternMatchesPath("/agents/bot-1/**", path("/agents/bot-1"))).toBe(true);
    expect(patternMatchesPath("/agents/bot-1/**", path("/agents/bot-1/a/b"))).toBe(true);
    expect(patternMatchesPath("/agents/bot-1/**", path("/agents/bot-10"))).toBe(false);
    expect(patternMatchesPath("/**", path("/anything/at/all"))).toBe(true);
  });

  it("covers a subtree only with a /** pattern at or above it", () => {
    expect(patternCovers("/agents/**", parseStreamSelector("/agents/bot-1/**"))).toBe(true);
    expect(patternCovers("/agents/**", parseStreamSelector("/agents/**"))).toBe(true);
    expect(patternCovers("/agents/bot-1/**", parseStreamSelector("/agents/**"))).toBe(false);
    expect(patternCovers("/agents/*", parseStreamSelector("/agents/**"))).toBe(false);
    expect(patternCovers("/**", parseStreamSelector("/**"))).toBe(true);
    expect(patternCovers("/agents/**", parseStreamSelector("/**"))).toBe(false);
  });

  it("needs the right itself: append does not imply read, admin does not imply append", () => {
    const grants = [{ path: "/agents/**", rights: ["append" as const] }];
    expect(allows(grants, "append", parseStreamSelector("/agents/a"))).toBe(true);
    expect(allows(grants, "read", parseStreamSelector("/agents/a"))).toBe(false);
    expect(allows(grants, "admin", parseStreamSelector("/agents/a"))).toBe(false);
  });
});
