import { AgentmeshError } from "./errors.js";
import { SubjectRoots } from "./wire.js";

/**
 * Stream paths and NATS subjects: the only code that builds or parses subjects.
 *
 * A path is `/` + 1..16 segments of URL-unreserved characters (RFC 3986 §2.3:
 * `[A-Za-z0-9._~-]`), at most 1023 characters. `.` and `..` are refused as
 * segments because HTTP clients rewrite them. Each segment becomes one subject
 * token; NATS forbids `.` inside a token, so `.` is written `~2E` and the
 * escape character `~` itself `~7E`. The mapping is therefore reversible.
 */

export const MAX_PATH_LENGTH = 1023;
/** Final segments that name an action on the stream before them (`POST /streams/<path>/resume`). */
export const RESERVED_LAST_SEGMENTS: ReadonlySet<string> = new Set(["resume", "state", "fork"]);
export const MAX_SEGMENTS = 16;
const SEGMENT = /^[A-Za-z0-9._~-]+$/;
const TOKEN = /^(?:[A-Za-z0-9_-]|~2E|~7E)+$/;

/** A validated stream path such as `/agents/bot-1`. */
export type StreamPath = string & { readonly __brand: "StreamPath" };

/** What a URL names: one stream, or every stream below a prefix (`/agents/**`). */
export type StreamSelector =
  | { kind: "stream"; path: StreamPath }
  | { kind: "subtree"; prefix: StreamPath | null };

function invalid(raw: string, why: string): AgentmeshError {
  return new AgentmeshError("INVALID_STREAM_PATH", `Invalid stream path ${JSON.stringify(raw.slice(0, 200))}: ${why}`);
}

function checkSegments(raw: string, segments: string[]): void {
  if (segments.length > MAX_SEGMENTS) throw invalid(raw, `at most ${MAX_SEGMENTS} segments`);
  for (const segment of segments) {
    if (segment.length === 0) throw invalid(raw, "empty segment");
    if (segment === "." || segment === "..") throw invalid(raw, "'.' and '..' are not allowed as segments");
    if (!SEGMENT.test(segment)) throw invalid(raw, "segments may contain only A-Z a-z 0-9 . _ ~ -");
  }
}

export function parseStreamPath(raw: string): StreamPath {
  const segments = checkedSegments(raw);
  if (RESERVED_LAST_SEGMENTS.has(segments.at(-1) ?? "")) throw invalid(raw, `a path cannot end in a reserved segment (${[...RESERVED_LAST_SEGMENTS].join(", ")})`);
  return raw as StreamPath;
}

/**
 * A path used only to select the streams below it (`/<prefix>/**`, `?prefix=`). It may end in a reserved
 * segment: `/x/resume` names no stream, but `/x/resume/child` is one.
 */
export function parseStreamPrefix(raw: string): StreamPath {
  checkedSegments(raw);
  return raw as StreamPath;
}

function checkedSegments(raw: string): string[] {
  if (raw.length > MAX_PATH_LENGTH) throw invalid(raw, `at most ${MAX_PATH_LENGTH} characters`);
  if (!raw.startsWith("/") || raw === "/") throw invalid(raw, "must be / followed by 1 to 16 segments");
  const segments = raw.slice(1).split("/");
  checkSegments(raw, segments);
  return segments;
}

/** Accepts a stream path, or a path ending in `/**` meaning every stream strictly below it (`/**` = all). */
export function parseStreamSelector(raw: string): StreamSelector {
  if (raw === "/**") return { kind: "subtree", prefix: null };
  if (raw.endsWith("/**")) return { kind: "subtree", prefix: parseStreamPrefix(raw.slice(0, -3)) };
  return { kind: "stream", path: parseStreamPath(raw) };
}

function encodeSegment(segment: string): string {
  return segment.replaceAll("~", "~7E").replaceAll(".", "~2E");
}

function decodeToken(token: string): string {
  return token.replace(/~(?:2E|7E)/g, (escape) => (escape === "~2E" ? "." : "~"));
}

function tokensOf(path: StreamPath): string {
  return path.slice(1).split("/").map(encodeSegment).join(".");
}

/** `events.<tokens>`: where a stream's stored events are published. */
export function eventsSubject(path: StreamPath): string {
  return `${SubjectRoots.events}.${tokensOf(path)}`;
}

/** `live.<tokens>`: where a stream's ephemeral events are published. */
export function liveSubject(path: StreamPath): string {
  return `${SubjectRoots.live}.${tokensOf(path)}`;
}

/** The subject filter for a selector under the given root (`events` or `live`). */
export function selectorSubject(selector: StreamSelector, root: keyof typeof SubjectRoots): string {
  if (selector.kind === "stream") return `${SubjectRoots[root]}.${tokensOf(selector.path)}`;
  return selector.prefix === null ? `${SubjectRoots[root]}.>` : `${SubjectRoots[root]}.${tokensOf(selector.prefix)}.>`;
}

/** The stream path of an `events.*` or `live.*` subject; null if the subject is not one of ours. */
export function pathOfSubject(subject: string): StreamPath | null {
  const tokens = subject.split(".");
  const root = tokens.shift();
  if (root !== SubjectRoots.events && root !== SubjectRoots.live) return null;
  if (tokens.length === 0 || tokens.length > MAX_SEGMENTS || !tokens.every((t) => TOKEN.test(t))) return null;
  const path = "/" + tokens.map(decodeToken).join("/");
  try {
    return parseStreamPath(path);
  } catch {
    return null;
  }
}

/**
 * A KV key for a stream path. KV keys allow `[-/_=.A-Za-z0-9]`, so the subject
 * tokens are used with the escape character `~` written as `=` (never in a path).
 */
export function kvKeyOf(path: StreamPath): string {
  return tokensOf(path).replaceAll("~", "=");
}

export function pathOfKvKey(key: string): StreamPath | null {
  return pathOfSubject(`${SubjectRoots.events}.${key.replaceAll("=", "~")}`);
}

/** A KV key for something named by a slug within a stream; a slug has no `.`, so the last token is the slug. */
export function slugKeyOf(path: StreamPath, slug: string): string {
  return `${kvKeyOf(path)}.${slug}`;
}

/** Whether a NATS subject filter (`*` one token, a final `>` one or more) takes a subject. */
export function subjectMatches(filter: string, subject: string): boolean {
  const want = filter.split(".");
  const have = subject.split(".");
  for (let i = 0; i < want.length; i++) {
    const token = want[i];
    if (token === ">") return have.length > i;
    if (i >= have.length || (token !== "*" && token !== have[i])) return false;
  }
  return have.length === want.length;
}
