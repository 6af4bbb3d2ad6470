import { ATTR_ERROR_TYPE } from "@opentelemetry/semantic-conventions";
import {
  ATTR_GEN_AI_AGENT_NAME,
  ATTR_GEN_AI_CONVERSATION_ID,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_PROVIDER_NAME,
  ATTR_GEN_AI_REQUEST_MODEL,
  ATTR_GEN_AI_RESPONSE_FINISH_REASONS,
  ATTR_GEN_AI_TOOL_CALL_ID,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_GEN_AI_TOOL_TYPE,
  ATTR_GEN_AI_USAGE_INPUT_TOKENS,
  ATTR_GEN_AI_USAGE_OUTPUT_TOKENS,
  GEN_AI_OPERATION_NAME_VALUE_CHAT,
  GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL,
  GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT,
  GEN_AI_PROVIDER_NAME_VALUE_OPENAI,
} from "@opentelemetry/semantic-conventions/incubating";
import type { SpanAttributeValue, SpanLinkRecord, SpanRecord } from "./span-record.js";
import { parseTraceparent, reactionSpanId, spanIdOf, traceIdOf } from "./trace-ids.js";
import type { TraceEvent } from "./trace-event.js";
import type { Turn } from "./turns.js";

/**
 * The spans of one turn, following the OpenTelemetry GenAI semantic conventions, from its events alone (same turn,
 * same spans: ids, names, times and attributes). docs/ARCHITECTURE.md, "Traces", draws the tree:
 *
 * - `invoke_agent <path>`: the turn, from its first event to the one that closed it (the root);
 * - `react <processor>`: each processor's reaction to an event of the turn, from that event's `createdAt` to its
 *   last reaction event's; its parent is the span that wrote the event it reacted to (the root for an input);
 * - `chat <model>`: each model request, from `agent/llm-request-started` to its `agent/llm-request-settled`, under the
 *   reaction that settled it;
 * - `execute_tool <name>`: each tool call, from `agent/tool-call-requested` to its first settlement, under the
 *   reaction that settled it (the tool's owner, or the llm's on a timeout or an interrupt).
 *
 * A call's request carried from before the turn (open at a fork point or a resume) was written in another trace:
 * whatever hangs from it here hangs from the root, and the call's span starts with the turn.
 */

/**
 * `gen_ai.provider.name`, required on inference spans. The llm processor's client speaks the OpenAI chat-completions
 * protocol (processors/llm/model-client.ts), for which the conventions' value is `openai`; nothing in the events names
 * another provider (`agent/llm-request-started` holds the model only, and the base URL is the processor's
 * configuration, not the log's, so `server.address` and `server.port` are left out).
 */
const PROVIDER = GEN_AI_PROVIDER_NAME_VALUE_OPENAI;

/** Our own attributes, beside the conventions' (which have no word for a stream or a processor). */
export const AgentmeshAttributes = {
  streamPath: "agentmesh.stream.path",
  offset: "agentmesh.offset",
  processor: "agentmesh.processor",
  causationOffset: "agentmesh.causation.offset",
  causationType: "agentmesh.causation.type",
  reactionTypes: "agentmesh.reaction.types",
  reactionOffsets: "agentmesh.reaction.offsets",
  turnOutcome: "agentmesh.turn.outcome",
  turnEvents: "agentmesh.turn.events",
  turnDroppedEvents: "agentmesh.turn.dropped_events",
  requestOutcome: "agentmesh.request.outcome",
  linkReason: "agentmesh.link.reason",
  forkedFromPath: "agentmesh.forked_from.path",
} as const;

type Attributes = Record<string, SpanAttributeValue>;

interface TurnIndex {
  path: string;
  traceId: string;
  rootSpanId: string;
  byOffset: ReadonlyMap<number, TraceEvent>;
  /** Offsets of the events carried from before the turn. */
  carried: ReadonlySet<number>;
  startMs: number;
  endMs: number;
}

/**
 * The span an event was written in: its writer's reaction span, or the root for an event no processor wrote or one
 * carried from before the turn (written in another trace: an earlier turn's, or a fork's source's).
 */
function writerSpanOf(index: TurnIndex, event: TraceEvent): string {
  return event.source === undefined || index.carried.has(event.offset) ? index.rootSpanId : reactionSpanId(index.path, event.source.processor, event.source.causationOffset);
}

/** A writer's `traceparent` that is not the log's (a client's own trace on an input, a fork's inherited one) is a link. */
function linksOf(events: readonly TraceEvent[], traceId: string, spanId: string): SpanLinkRecord[] {
  const links = new Map<string, SpanLinkRecord>();
  for (const event of events) {
    const context = parseTraceparent(event.traceparent);
    if (context === undefined || (context.traceId === traceId && context.spanId === spanId)) continue;
    links.set(`${context.traceId}-${context.spanId}`, { ...context, attributes: { [AgentmeshAttributes.linkReason]: "writer traceparent", [AgentmeshAttributes.offset]: event.offset } });
  }
  return [...links.values()];
}

function rootSpan(turn: Turn, index: TurnIndex, root: TraceEvent): SpanRecord {
  const failed = turn.outcome === "failed" || turn.outcome === "timed-out";
  return {
    traceId: index.traceId,
    spanId: index.rootSpanId,
    name: `${GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT} ${turn.path}`,
    kind: "internal",
    startMs: root.createdAtMs,
    endMs: index.endMs,
    attributes: {
      [ATTR_GEN_AI_OPERATION_NAME]: GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT,
      [ATTR_GEN_AI_AGENT_NAME]: turn.path,
      [ATTR_GEN_AI_CONVERSATION_ID]: turn.path,
      [AgentmeshAttributes.streamPath]: turn.path,
      [AgentmeshAttributes.offset]: turn.rootOffset,
      [AgentmeshAttributes.turnOutcome]: turn.outcome,
      [AgentmeshAttributes.turnEvents]: turn.events.length + turn.dropped,
      ...(turn.dropped > 0 ? { [AgentmeshAttributes.turnDroppedEvents]: turn.dropped } : {}),
      ...(failed ? { [ATTR_ERROR_TYPE]: turn.outcome } : {}),
    },
    status: failed ? { code: "error", message: `the turn ${turn.outcome === "failed" ? "failed" : "timed out"}` } : { code: "unset" },
    links: [...linksOf([root], index.traceId, index.rootSpanId), ...continuedLinks(turn)],
  };
}

/** A fork's turn links to the source's turn it goes on from: the same ids the source's export gives that turn's root. */
function continuedLinks(turn: Turn): SpanLinkRecord[] {
  const from = turn.continues;
  if (from === undefined) return [];
  return [{ traceId: traceIdOf(from.path, from.rootOffset), spanId: spanIdOf(from.path, "turn", from.rootOffset), attributes: { [AgentmeshAttributes.linkReason]: "forked from", [AgentmeshAttributes.forkedFromPath]: from.path, [AgentmeshAttributes.offset]: from.rootOffset } }];
}

function reactionSpans(index: TurnIndex, events: readonly TraceEvent[]): SpanRecord[] {
  const groups = new Map<string, { processor: string; causationOffset: number; events: TraceEvent[] }>();
  for (const event of events) {
    if (event.source === undefined) continue;
    const key = `${event.source.processor}\n${event.source.causationOffset}`;
    const group = groups.get(key) ?? { processor: event.source.processor, causationOffset: event.source.causationOffset, events: [] };
    group.events.push(event);
    groups.set(key, group);
  }
  return [...groups.values()].map((group) => {
    const cause = index.byOffset.get(group.causationOffset);
    const spanId = reactionSpanId(index.path, group.processor, group.causationOffset);
    const first = group.events[0];
    const startMs = cause?.createdAtMs ?? first?.createdAtMs ?? 0;
    return {
      traceId: index.traceId,
      spanId,
      parentSpanId: cause === undefined ? index.rootSpanId : writerSpanOf(index, cause),
      name: `react ${group.processor}`,
      kind: "consumer",
      startMs,
      endMs: Math.max(startMs, ...group.events.map((e) => e.createdAtMs)),
      attributes: {
        [AgentmeshAttributes.streamPath]: index.path,
        [AgentmeshAttributes.processor]: group.processor,
        [AgentmeshAttributes.causationOffset]: group.causationOffset,
        ...(cause === undefined ? {} : { [AgentmeshAttributes.causationType]: cause.type }),
        [AgentmeshAttributes.reactionTypes]: group.events.map((e) => e.type),
        [AgentmeshAttributes.reactionOffsets]: group.events.map((e) => e.offset),
      },
      status: { code: "unset" },
      links: linksOf(group.events, index.traceId, spanId),
    } satisfies SpanRecord;
  });
}

function chatSpans(index: TurnIndex, events: readonly TraceEvent[]): SpanRecord[] {
  const spans: SpanRecord[] = [];
  for (const started of events) {
    if (started.detail.kind !== "request-started") continue;
    const settled = events.find((e) => e.detail.kind === "request-settled" && e.detail.requestOffset === started.offset);
    const result = settled?.detail.kind === "request-settled" ? settled.detail : undefined;
    const outcome = result?.status ?? "unsettled";
    const attributes: Attributes = {
      [ATTR_GEN_AI_OPERATION_NAME]: GEN_AI_OPERATION_NAME_VALUE_CHAT,
      [ATTR_GEN_AI_PROVIDER_NAME]: PROVIDER,
      [ATTR_GEN_AI_REQUEST_MODEL]: started.detail.model,
      [AgentmeshAttributes.streamPath]: index.path,
      [AgentmeshAttributes.offset]: started.offset,
      [AgentmeshAttributes.requestOutcome]: outcome,
    };
    if (result?.usage != null) {
      attributes[ATTR_GEN_AI_USAGE_INPUT_TOKENS] = result.usage.promptTokens;
      attributes[ATTR_GEN_AI_USAGE_OUTPUT_TOKENS] = result.usage.completionTokens;
    }
    if (result?.status === "succeeded") attributes[ATTR_GEN_AI_RESPONSE_FINISH_REASONS] = [result.toolCalls > 0 ? "tool_calls" : "stop"];
    // Cancelled (an interrupt) is the loop doing its job, not an error; failed and never settled are.
    const failed = outcome === "failed" || outcome === "unsettled";
    if (failed) attributes[ATTR_ERROR_TYPE] = outcome === "failed" ? "_OTHER" : "unsettled";
    spans.push({
      traceId: index.traceId,
      spanId: spanIdOf(index.path, "chat", started.offset),
      parentSpanId: settled === undefined ? writerSpanOf(index, started) : writerSpanOf(index, settled),
      name: `${GEN_AI_OPERATION_NAME_VALUE_CHAT} ${started.detail.model}`,
      kind: "client",
      startMs: started.createdAtMs,
      endMs: settled?.createdAtMs ?? index.endMs,
      attributes,
      status: failed ? { code: "error", ...(result?.error === undefined ? { message: "the request did not settle within the turn" } : { message: result.error }) } : { code: "unset" },
      links: [],
    });
  }
  return spans;
}

/** Why a tool call ended in an error, as a low-cardinality `error.type`. */
function toolErrorType(index: TurnIndex, settled: TraceEvent | undefined): string | undefined {
  if (settled === undefined) return "unsettled";
  if (settled.detail.kind !== "tool-settled" || settled.detail.error === undefined) return undefined;
  const cause = settled.source === undefined ? undefined : index.byOffset.get(settled.source.causationOffset);
  if (cause?.detail.kind === "tool-timed-out") return "timeout";
  if (cause?.detail.kind === "input") return "cancelled";
  return "tool_error";
}

function toolSpans(index: TurnIndex, events: readonly TraceEvent[], carried: readonly TraceEvent[]): SpanRecord[] {
  const spans: SpanRecord[] = [];
  for (const requested of [...carried, ...events]) {
    if (requested.detail.kind !== "tool-requested") continue;
    const { callId, name } = requested.detail;
    const settled = events.find((e) => e.offset > requested.offset && e.detail.kind === "tool-settled" && e.detail.callId === callId);
    const errorType = toolErrorType(index, settled);
    const message = settled?.detail.kind === "tool-settled" ? settled.detail.error : "the call was not settled within the turn";
    spans.push({
      traceId: index.traceId,
      spanId: spanIdOf(index.path, "tool", requested.offset),
      // A settlement no processor wrote (over HTTP without `source`) leaves the call under the reaction that asked for it.
      parentSpanId: settled?.source === undefined ? writerSpanOf(index, requested) : writerSpanOf(index, settled),
      name: `${GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL} ${name}`,
      kind: "internal",
      // A carried call is this turn's from its start (its request's time is the earlier turn's, or the source's).
      startMs: Math.max(requested.createdAtMs, index.startMs),
      endMs: settled?.createdAtMs ?? index.endMs,
      attributes: {
        [ATTR_GEN_AI_OPERATION_NAME]: GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL,
        [ATTR_GEN_AI_TOOL_NAME]: name,
        [ATTR_GEN_AI_TOOL_CALL_ID]: callId,
        [ATTR_GEN_AI_TOOL_TYPE]: "function",
        [AgentmeshAttributes.streamPath]: index.path,
        [AgentmeshAttributes.offset]: requested.offset,
        ...(settled?.source === undefined ? {} : { [AgentmeshAttributes.processor]: settled.source.processor }),
        ...(errorType === undefined ? {} : { [ATTR_ERROR_TYPE]: errorType }),
      },
      status: errorType === undefined ? { code: "unset" } : { code: "error", ...(message === undefined ? {} : { message }) },
      links: [],
    });
  }
  return spans;
}

/** The turn's spans, root first, then by start time and id: the same order on every export. */
export function spansOfTurn(turn: Turn): SpanRecord[] {
  const root = turn.events[0];
  if (root === undefined) return [];
  const index: TurnIndex = {
    path: turn.path,
    traceId: traceIdOf(turn.path, turn.rootOffset),
    rootSpanId: spanIdOf(turn.path, "turn", turn.rootOffset),
    byOffset: new Map([...turn.carried, ...turn.events].map((e) => [e.offset, e])),
    carried: new Set(turn.carried.map((e) => e.offset)),
    startMs: root.createdAtMs,
    endMs: Math.max(...turn.events.map((e) => e.createdAtMs)),
  };
  const children = [...reactionSpans(index, turn.events), ...chatSpans(index, turn.events), ...toolSpans(index, turn.events, turn.carried)];
  children.sort((a, b) => a.startMs - b.startMs || a.spanId.localeCompare(b.spanId));
  return [rootSpan(turn, index, root), ...children];
}
