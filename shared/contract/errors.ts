/**
 * One registry of the errors a client can see: a stable code, an HTTP status
 * and a default message. docs/EVENTS.md ("Errors") lists the same table.
 */
export const ErrorCodes = {
  BAD_REQUEST: { status: 400, message: "The request is malformed" },
  INVALID_STREAM_PATH: { status: 400, message: "The stream path is not valid" },
  INVALID_JSON: { status: 400, message: "The request body is not valid JSON" },
  INVALID_EVENT: { status: 400, message: "The event is not valid" },
  INVALID_QUERY: { status: 400, message: "A query parameter is not valid" },
  INVALID_HEADER: { status: 400, message: "A header is not valid" },
  BATCH_TOO_LARGE: { status: 400, message: "Too many events in one batch" },
  INVALID_SIGNATURE: { status: 401, message: "The webhook signature does not verify" },
  UNAUTHENTICATED: { status: 401, message: "A valid bearer token is required" },
  FORBIDDEN: { status: 403, message: "The token does not grant this" },
  NOT_FOUND: { status: 404, message: "No such route" },
  STREAM_NOT_FOUND: { status: 404, message: "The stream does not exist" },
  PROCESSOR_NOT_FOUND: { status: 404, message: "No processor of this name has a durable consumer" },
  INVALID_REWIND_TARGET: { status: 400, message: "`to` must be an offset (an integer from 1) or an RFC 3339 time not in the future" },
  REWIND_AHEAD: { status: 409, message: "The target is past events the processor has not handled yet: a rewind only moves back" },
  OFFSET_NOT_IN_STREAM: { status: 400, message: "No event of this stream is at that offset" },
  OFFSET_CONFLICT: { status: 409, message: "The stream's last offset is not the expected one" },
  STREAM_EXISTS: { status: 409, message: "A stream exists at this path with a different configuration" },
  STREAM_CLOSED: { status: 409, message: "The stream is closed; nothing more can be appended" },
  STREAM_GONE: { status: 410, message: "The stream was deleted; its forks still read its data" },
  STREAM_APPEND_ONLY: { status: 409, message: "Agent event streams are append-only: they are never closed or deleted" },
  CONTENT_TYPE_MISMATCH: { status: 409, message: "The content type differs from the stream's" },
  STREAM_SEQ_CONFLICT: { status: 409, message: "Stream-Seq must be greater than the stream's last one" },
  PRODUCER_FENCED: { status: 403, message: "A newer epoch of this producer exists" },
  PRODUCER_SEQ_GAP: { status: 409, message: "Producer-Seq skips a sequence number" },
  STREAM_PAUSED: { status: 423, message: "The stream is paused; a person must resume it" },
  STREAM_NOT_PAUSED: { status: 409, message: "The stream is not paused" },
  FORK_IN_PROGRESS: { status: 409, message: "This fork is still being copied" },
  FORK_INTERRUPTED: { status: 409, message: "Another writer appended to the fork while it was being copied" },
  RATE_LIMITED: { status: 429, message: "Too many requests; slow down" },
  TOO_MANY_CONNECTIONS: { status: 429, message: "Too many live connections for this client" },
  PAYLOAD_TOO_LARGE: { status: 413, message: "The request body is too large" },
  EVENT_TOO_LARGE: { status: 413, message: "The event is larger than NATS accepts in one message" },
  FORK_TOO_LARGE: { status: 413, message: "The stream is longer than a fork copies (FORK_MAX_EVENTS)" },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: "Unsupported content type" },
  NATS_UNAVAILABLE: { status: 503, message: "NATS is not reachable; retry later" },
  SECRETS_UNAVAILABLE: { status: 503, message: "This service has no key to seal or open secrets with (SECRETS_KEYS)" },
  METHOD_NOT_ALLOWED: { status: 405, message: "This route does not take this method" },
  // Durable Streams subscriptions (gateway/durable/subscriptions): the codes the protocol's conformance suite expects.
  INVALID_REQUEST: { status: 400, message: "The subscription request is not valid" },
  WEBHOOK_URL_REJECTED: { status: 400, message: "The webhook URL may not be used (DURABLE_WEBHOOK_ALLOWED_NETWORKS)" },
  SUBSCRIPTION_NOT_FOUND: { status: 404, message: "No such subscription" },
  SUBSCRIPTION_ALREADY_EXISTS: { status: 409, message: "A subscription with this id exists with a different configuration" },
  TOKEN_INVALID: { status: 401, message: "The wake token is missing or does not verify" },
  TOKEN_EXPIRED: { status: 401, message: "The wake token has expired" },
  FENCED: { status: 409, message: "The wake is no longer current (stale generation or wake id)" },
  ALREADY_CLAIMED: { status: 409, message: "Another worker holds the wake's lease" },
  NO_PENDING_WORK: { status: 409, message: "Nothing is pending for this subscription" },
  INVALID_OFFSET: { status: 409, message: "An acked offset is not a known stream's offset between its acked offset and its tail" },
  INTERNAL: { status: 500, message: "Internal error" },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

/**
 * An error whose code a client may rely on. `details` are extra JSON fields of
 * the error body; `headers` go on the response (protocols such as Durable
 * Streams put the state a client needs to recover in headers).
 */
export class AgentmeshError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message?: string, options?: { details?: Record<string, unknown>; headers?: Record<string, string>; cause?: unknown }) {
    super(message ?? ErrorCodes[code].message, { cause: options?.cause });
    this.name = "AgentmeshError";
    this.code = code;
    this.status = ErrorCodes[code].status;
    this.details = options?.details ?? {};
    this.headers = options?.headers ?? {};
  }

  toJSON(): { error: { code: ErrorCode; message: string } & Record<string, unknown> } {
    return { error: { ...this.details, code: this.code, message: this.message } };
  }
}

/** Normalise anything thrown into an Error, keeping the original as `cause`. */
export function ensureError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : "Non-error value thrown", { cause: value });
}
