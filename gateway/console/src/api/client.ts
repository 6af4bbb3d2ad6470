import type { EventEnvelope } from "../../../../shared/contract/envelope.js";
import { currentToken } from "./token.js";
import type { Me, ProcessorConsumer, ReadPage, StreamListBody, StreamState } from "./types.js";

/** A gateway error as it answered it (`{error: {code, message}}`), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** What a person is told: a 401 or 403 says plainly that the token is the problem. */
  get plain(): string {
    if (this.status === 401) return `Not signed in: ${this.message}. Paste a token above.`;
    if (this.status === 403) return `Not allowed: ${this.message}.`;
    return `${this.code}: ${this.message}`;
  }
}

function authHeaders(): Record<string, string> {
  const token = currentToken();
  return token === null ? {} : { authorization: `Bearer ${token}` };
}

async function request<T>(method: string, url: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { accept: "application/json", ...authHeaders(), ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (err) {
    throw new ApiError(0, "NETWORK", err instanceof Error ? err.message : String(err));
  }
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text === "" ? null : JSON.parse(text);
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!response.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(response.status, error?.code ?? `HTTP_${response.status}`, error?.message ?? response.statusText);
  }
  return json as T;
}

/** `/streams/a/b`: paths are URL-unreserved characters, so they go in as they are. */
export function streamUrl(path: string, suffix = ""): string {
  return `/streams${path}${suffix}`;
}

export const api = {
  me: () => request<Me>("GET", "/me"),
  listStreams: (prefix: string | null, cursor?: string) => {
    const query = new URLSearchParams({ limit: "1000" });
    if (prefix !== null && prefix !== "") query.set("prefix", prefix);
    if (cursor !== undefined) query.set("cursor", cursor);
    return request<StreamListBody>("GET", `/streams?${query.toString()}`);
  },
  read: (path: string, start: { after: number } | { at: string }, limit = 1000) => {
    const query = new URLSearchParams({ limit: String(limit) });
    if ("after" in start) query.set("after", String(start.after));
    else query.set("at", start.at);
    return request<ReadPage>("GET", `${streamUrl(path)}?${query.toString()}`);
  },
  append: (path: string, event: { type: string; payload: unknown }) => request<EventEnvelope>("POST", streamUrl(path), event),
  resume: (path: string, reason: string) => request<EventEnvelope>("POST", streamUrl(path, "/resume"), { reason }),
  fork: (path: string, body: { at: number; to: string; subscriptions: boolean }) => request<{ forked: EventEnvelope; events: number }>("POST", streamUrl(path, "/fork"), body),
  state: (path: string, at: number | null, processor?: string) => {
    const query = new URLSearchParams();
    if (at !== null) query.set("at", String(at));
    if (processor !== undefined) query.set("processor", processor);
    return request<StreamState>("GET", `${streamUrl(path, "/state")}?${query.toString()}`);
  },
  processors: () => request<{ processors: ProcessorConsumer[] }>("GET", "/processors"),
};

/** The SSE URL of a stream: EventSource cannot send headers, so the token goes as `access_token` (never logged by the gateway). */
export function liveUrl(path: string, after: number): string {
  const query = new URLSearchParams({ live: "sse", after: String(after) });
  const token = currentToken();
  if (token !== null) query.set("access_token", token);
  return `${streamUrl(path)}?${query.toString()}`;
}
