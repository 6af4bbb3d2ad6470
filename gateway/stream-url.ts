import { AgentmeshError } from "../shared/errors.js";
import { parseStreamPath, parseStreamSelector, type StreamPath, type StreamSelector } from "../shared/subjects.js";

const PREFIX = "/streams";
const HOOKS_PREFIX = "/hooks";

/**
 * The stream part of a `/streams/...` URL, taken from the raw URL without
 * percent-decoding: paths are made of unreserved characters only, so an
 * encoded character is simply invalid (and `%2F` can never forge a segment).
 */
function rawStreamPart(url: string, prefix = PREFIX): string {
  const pathname = url.split("?", 1)[0] ?? "";
  if (!pathname.startsWith(`${prefix}/`)) throw new AgentmeshError("INVALID_STREAM_PATH");
  return pathname.slice(prefix.length);
}

/** `POST /hooks/<path>`: the stream an inbound webhook is appended to. */
export function hookPathFromUrl(url: string): StreamPath {
  return parseStreamPath(rawStreamPart(url, HOOKS_PREFIX));
}

export function selectorFromUrl(url: string): StreamSelector {
  return parseStreamSelector(rawStreamPart(url));
}

export function streamPathFromUrl(url: string): StreamPath {
  const raw = rawStreamPart(url);
  if (raw.endsWith("/**")) throw new AgentmeshError("INVALID_STREAM_PATH", "Events are appended to one stream, not to a subtree (/**)");
  return parseStreamPath(raw);
}

/** `POST /streams/<path>/resume`: the stream to resume, or null when the URL is not a resume. */
export function resumedPathFromUrl(url: string): StreamPath | null {
  const raw = rawStreamPart(url);
  if (!raw.endsWith("/resume")) return null;
  return parseStreamPath(raw.slice(0, -"/resume".length));
}

/** The Durable Streams protocol's URL prefix; the rest of the URL is the stream path. */
export const DURABLE_PREFIX = "/v1/stream";

/** `/v1/stream/<path>`: the stream a Durable Streams request names (the same path as `/streams/<path>`). */
export function durablePathFromUrl(url: string): StreamPath {
  return parseStreamPath(rawStreamPart(url, DURABLE_PREFIX));
}
