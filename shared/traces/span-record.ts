/**
 * A finished span as plain data: what the log says, before any OpenTelemetry object exists. Derived by
 * turn-spans.ts, turned into the SDK's spans and sent by otlp-export.ts, printed as JSON by
 * `agentmesh traces export --print`.
 */

export type SpanAttributeValue = string | number | boolean | string[] | number[];

export interface SpanLinkRecord {
  traceId: string;
  spanId: string;
  attributes: Readonly<Record<string, SpanAttributeValue>>;
}

export interface SpanRecord {
  traceId: string;
  spanId: string;
  /** Absent for a turn's root span. */
  parentSpanId?: string;
  name: string;
  /** OpenTelemetry SpanKind, by name. */
  kind: "internal" | "client" | "consumer";
  /** Unix milliseconds: the events' `createdAt`. */
  startMs: number;
  endMs: number;
  attributes: Readonly<Record<string, SpanAttributeValue>>;
  status: { code: "unset" | "error"; message?: string };
  links: readonly SpanLinkRecord[];
}
