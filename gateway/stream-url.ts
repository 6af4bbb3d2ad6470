import { AgentmeshError } from "../shared/contract/errors.js";
import { parseStreamPath, parseStreamSelector, type StreamPath, type StreamSelector } from "../shared/contract/subjects.js";

const PREFIX = "/streams";
const HOOKS_PREFIX = "/hooks";

const PERCENT_ENCODED = /%([0-9A-Fa-f]{2})/g;
const UNRESERVED = /^[A-Za-z0-9._~-]$/;

/**
 * RFC 3986 §6.2.2.2: `%7E` and `~` name the same resource, so an encoded unreserved character is read as itself.
 * Any other encoded octet stays encoded, and so invalid in a path: `%2F` can never forge a segment.
 */
function decodeUnreserved(pathname: string): string {
  if (!pathname.includes("%")) return pathname;
  return pathname.replace(PERCENT_ENCODED, (encoded, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : encoded;
  });
}

/**
 * The stream part of a `/streams/...` URL, taken from the raw URL: paths are
 * made of unreserved characters only, so nothing else is decoded.
 */
function rawStreamPart(url: string, prefix = PREFIX): string {
  const pathname = decodeUnreserved(url.split("?", 1)[0] ?? "");
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

/** `POST /streams/<path>/fork`: the stream to fork, or null when the URL is not a fork. */
export function forkedPathFromUrl(url: string): StreamPath | null {
  const raw = rawStreamPart(url);
  if (!raw.endsWith("/fork")) return null;
  return parseStreamPath(raw.slice(0, -"/fork".length));
}

/** `GET /streams/<path>/state`: the stream whose processors' state is asked for, or null when the URL is not one. */
export function statePathFromUrl(url: string): StreamPath | null {
  const raw = rawStreamPart(url);
  if (!raw.endsWith("/state")) return null;
  return parseStreamPath(raw.slice(0, -"/state".length));
}

/** The Durable Streams protocol's URL prefix; the rest of the URL is the stream path. */
export const DURABLE_PREFIX = "/v1/stream";

/** `/v1/stream/<path>`: the stream a Durable Streams request names (the same path as `/streams/<path>`). */
export function durablePathFromUrl(url: string): StreamPath {
  return parseStreamPath(rawStreamPart(url, DURABLE_PREFIX));
}

/** `/mcp/<path>`: the agent an MCP client talks to (gateway/mcp/), the same path as `/streams/<path>`. */
export function mcpPathFromUrl(url: string): StreamPath {
  return parseStreamPath(rawStreamPart(url, "/mcp"));
}
