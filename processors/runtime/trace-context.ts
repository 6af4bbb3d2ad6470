import type { EventEnvelope, ValidEventInput } from "../../shared/contract/envelope.js";
import { MetadataKeys } from "../../shared/contract/wire.js";
import { formatTraceparent, parseTraceparent, reactionSpanId, traceIdOf } from "../../shared/traces/trace-ids.js";

const TRACEPARENT_KEY = MetadataKeys.traceparent;

/**
 * A reaction carries `traceparent`: the trace of the turn its cause belongs to, and the span of this reaction (both
 * derived from the log, shared/traces/trace-ids.ts), so a processor in any language that reacts to it can join the
 * same trace. The trace comes from the cause's own `traceparent` when the cause is itself a reaction; an event no
 * processor wrote (a person's input) roots a trace of its own offset, whatever `traceparent` its writer gave it (that
 * one is linked, not joined: a stream's traces must follow from its log, and a fork's be its own). A cause a fork
 * inherited carries its source's `traceparent`: it is not joined either (the runtime never reacts to one, but another
 * writer might). In a fork, the open work is taken up in reactions to `stream/forked`, which has no `source`: their
 * trace is rooted at it, which is where shared/traces/turns.ts roots the fork's turn. A reaction whose processor set a
 * `traceparent` itself keeps it.
 */
export function withTraceContext(reaction: ValidEventInput, cause: EventEnvelope, processor: string): ValidEventInput {
  if (reaction.metadata?.[TRACEPARENT_KEY] !== undefined) return reaction;
  const path = cause.streamPath;
  const joined = cause.source === undefined || cause.forkedFrom !== undefined ? undefined : parseTraceparent(cause.metadata?.[TRACEPARENT_KEY]);
  const traceId = joined?.traceId ?? traceIdOf(path, cause.offset);
  const traceparent = formatTraceparent({ traceId, spanId: reactionSpanId(path, processor, cause.offset) });
  return { ...reaction, metadata: { ...reaction.metadata, [TRACEPARENT_KEY]: traceparent } };
}
