/**
 * Every name that crosses a process boundary (NATS subjects, headers, stream
 * names, event types) lives here, so a processor written in another language
 * can be checked against one list. docs/EVENTS.md documents each of them.
 */

export const SubjectRoots = {
  /** Stored events: `events.<path tokens>`, captured by the JetStream stream. */
  events: "events",
  /** Ephemeral events: `live.<path tokens>`, core NATS only, never stored. */
  live: "live",
  /** Durable Streams protocol data: `durable.<id>`, a fresh id each time a stream is created (gateway/durable). */
  durable: "durable",
  /** Core NATS only: `durable-changes.<id>` tells live readers of a durable stream that it changed (append or close). */
  durableChanges: "durable-changes",
  /**
   * Core NATS only: `index-changes.<bucket>` carries each fact a service records in a log index (a pause, a resume),
   * so every service applies it at once, whatever state the bucket is in (shared/log/log-index.ts).
   */
  indexChanges: "index-changes",
} as const;

export const NatsHeaders = {
  /** JetStream dedupe id: `<streamPath>|<idempotencyKey>` (the window is stream-wide, so the path namespaces the key). */
  msgId: "Nats-Msg-Id",
  /** JetStream precondition: the subject's last sequence must equal this (0 = no message yet). */
  expectedLastSubjectSequence: "Nats-Expected-Last-Subject-Sequence",
} as const;

/** JetStream API error codes we react to (nats-server `server/errors.json`). */
export const JetStreamErrorCodes = {
  /** "wrong last sequence" for Nats-Expected-Last-Subject-Sequence. */
  wrongLastSequence: 10071,
  /** The same, when the server cannot tell the current sequence. */
  wrongLastSequenceUnknown: 10164,
} as const;

export const SystemEventTypes = {
  /** What a reader sees in place of a stored message that is not a valid event body. */
  invalidEvent: "stream/invalid-event",
  /** The stream is paused (circuit breaker or a person): appends and reactions are refused until resumed. */
  paused: "stream/paused",
  /** The agent loop hit its turn limit: pauses the stream like stream/paused. */
  agentPaused: "agent/paused",
  /** A person resumed the stream; the only event accepted while it is paused. */
  resumed: "stream/resumed",
  /** Per-stream circuit-breaker limits, replacing the defaults. */
  breakerConfigured: "stream/circuit-breaker-configured",
  /** A processor gave up on an event (terminal error or delivery limit reached). */
  errorOccurred: "stream/error-occurred",
  /** Sets (or clears, with no secret) the secret that signs the stream's inbound webhooks. */
  inboundConfigured: "webhook/inbound-configured",
  /** An inbound webhook, stored whatever its body. */
  webhookReceived: "webhook/received",
  /** The last event of a fork's copy of its source's history: from here on the fork is an agent of its own. */
  forked: "stream/forked",
} as const;

/** The processors this repository ships, by the name each writes into `source.processor` and names its durable consumer after. */
export const ProcessorNames = {
  llm: "llm",
  breaker: "breaker",
  scheduler: "scheduler",
  webhookPusher: "webhook-pusher",
  /** Turns the log into OpenTelemetry traces; appends nothing of its own (processors/traces). */
  traces: "traces",
  /** Lists an agent's MCP servers' tools and calls them (processors/mcp). */
  mcp: "mcp",
} as const;

/** Metadata keys the mesh itself writes (docs/EVENTS.md). */
export const MetadataKeys = {
  /** W3C Trace Context of a reaction: its turn's trace and its own span (docs/EVENTS.md, "Trace context"). */
  traceparent: "traceparent",
  /**
   * `{index, of}` on each reaction of a decision of more than one event: a decision on the stream is not made while
   * its last event is one of a batch still being stored (docs/EVENTS.md, "The decide-and-append loop").
   */
  batch: "batch",
} as const;

/** The agent loop's events (shared/contract/events/agent.ts has their payloads). */
export const AgentEventTypes = {
  configured: "agent/configured",
  inputAdded: "agent/input-added",
  requestStarted: "agent/llm-request-started",
  responseChunk: "agent/llm-response-chunk",
  requestSettled: "agent/llm-request-settled",
  toolCallRequested: "agent/tool-call-requested",
  toolCallSettled: "agent/tool-call-settled",
  /** Scheduled by the LLM processor when it requests a tool call; settles the call with an error if nobody has. */
  toolCallTimedOut: "agent/tool-call-timed-out",
  paused: "agent/paused",
  /** The agent's MCP servers (admin; replaces the list): the mcp processor offers their tools (processors/mcp). */
  mcpServersConfigured: "agent/mcp-servers-configured",
  /** One MCP server's tools as its `tools/list` gave them, under the names the model is offered. */
  toolsDiscovered: "agent/tools-discovered",
  /** Ephemeral: a running tool call's progress (an MCP server's `notifications/progress`). */
  toolCallProgressed: "agent/tool-call-progressed",
  /** What the LLM processor sends from here on: the summary in place of the history through an offset. */
  contextCompacted: "agent/context-compacted",
  /** Token and cost limits: the agent is paused before a request once either is reached. */
  budgetConfigured: "agent/budget-configured",
} as const;

/** The scheduler's events (shared/contract/events/schedules.ts). */
export const ScheduleEventTypes = {
  added: "schedule/added",
  cancelled: "schedule/cancelled",
} as const;

/** The webhook pusher's events (shared/contract/events/subscriptions.ts). */
export const SubscriptionEventTypes = {
  configured: "subscription/configured",
  removed: "subscription/removed",
  deliveryFailed: "subscription/delivery-failed",
  disabled: "subscription/disabled",
} as const;

/** Appending these changes how a stream is run (pause, limits, schedules, webhooks): the `admin` right is needed. */
const SteeringEventTypes = [
  SystemEventTypes.paused,
  SystemEventTypes.agentPaused,
  SystemEventTypes.resumed,
  SystemEventTypes.breakerConfigured,
  SystemEventTypes.inboundConfigured,
  ScheduleEventTypes.added,
  ScheduleEventTypes.cancelled,
  SubscriptionEventTypes.configured,
  SubscriptionEventTypes.removed,
  // The model, prompt, tools and turn limit an agent runs with: what it costs and how far it may go alone.
  AgentEventTypes.configured,
  // Where the agent's tools are called (outbound requests from the mesh, with credentials), and what it may spend.
  AgentEventTypes.mcpServersConfigured,
  AgentEventTypes.budgetConfigured,
  // Stored by the gateway for POST /hooks; the breaker does not count it as load, so a client writing one
  // directly could run a loop past the breaker.
  SystemEventTypes.webhookReceived,
];

/**
 * What the mesh's own processors write. Forged by a client, each would steer a processor: which model a request
 * runs with, which tool is called, what counts as settled or failed. A client needs `admin` to write one.
 */
const ProcessorOutputEventTypes = [
  AgentEventTypes.requestStarted,
  AgentEventTypes.requestSettled,
  AgentEventTypes.responseChunk,
  AgentEventTypes.toolCallRequested,
  AgentEventTypes.toolCallTimedOut,
  // Forged, one would offer the model a tool the mcp processor then calls, or hide the history from the model.
  AgentEventTypes.toolsDiscovered,
  AgentEventTypes.toolCallProgressed,
  AgentEventTypes.contextCompacted,
  SystemEventTypes.errorOccurred,
  SystemEventTypes.invalidEvent,
  SubscriptionEventTypes.deliveryFailed,
  SubscriptionEventTypes.disabled,
  // Written by the gateway's fork route; forged, it would have processors take over inherited work (subscriptions).
  SystemEventTypes.forked,
];

/** Every event type a client needs the `admin` right to append (docs/EVENTS.md, "Admin-only event types"). */
export const AdminEventTypes: ReadonlySet<string> = new Set([...SteeringEventTypes, ...ProcessorOutputEventTypes]);

export const KvBuckets = {
  /** Which streams are paused: a cache of each stream's last stream/paused or stream/resumed, rebuildable from the log. */
  streamStatus: "agentmesh-stream-status",
  /** Each stream's inbound webhook secret: a cache of its last webhook/inbound-configured. */
  inboundWebhooks: "agentmesh-inbound-webhooks",
  /** Durable Streams protocol: each stream's configuration, tail, producers and fork lineage. */
  durableStreams: "agentmesh-durable-streams",
  /** Durable Streams subscriptions: one record per subscription (config, links, cursors, wake and lease), changed by compare-and-set. */
  durableSubscriptions: "agentmesh-ds-subscriptions",
} as const;

export const ConsumerNames = {
  /** Durable pull consumer shared by every replica of a processor. */
  processor: (name: string): string => `processor-${name}`,
  /** Durable pull consumer on `KV_agentmesh-durable-streams` shared by every gateway replica: each stream change wakes subscriptions once. */
  durableSubscriptions: "ds-subscriptions",
} as const;

export const Defaults = {
  eventsStream: "EVENTS",
  duplicateWindowMs: 120_000,
  readLimit: 100,
  maxReadLimit: 1000,
} as const;
