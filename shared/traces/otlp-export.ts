import { SpanKind, SpanStatusCode, TraceFlags, type HrTime, type Link, type SpanStatus } from "@opentelemetry/api";
import { ExportResultCode, type InstrumentationScope } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { detectResources, envDetector, resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import type { SpanRecord } from "./span-record.js";

/**
 * Sends span records over OTLP/HTTP (protobuf) with the official exporter, to any collector. The spans are already
 * finished (their times are the events'), so they go straight to the exporter as the SDK's `ReadableSpan`s: no tracer,
 * no sampler, no clock. The exporter reads the standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`,
 * `_COMPRESSION`, certificates), and retries a collector's 429 and 5xx with backoff.
 */

export class TraceExportError extends Error {
  override readonly name = "TraceExportError";
}

/** The scope every span is reported under. */
const SCOPE: InstrumentationScope = { name: "agentmesh-traces", version: "0.1.0" };

/** Where traces go: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces` (the OTLP spec's rule). */
export function tracesUrlOf(env: NodeJS.ProcessEnv): string {
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (specific !== undefined && specific !== "") return specific;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const root = base === undefined || base === "" ? "http://localhost:4318" : base;
  return `${root.replace(/\/+$/, "")}/v1/traces`;
}

/**
 * `service.name` is `agentmesh` whoever exports (the traces processor or the CLI), so an export of a stream's history
 * is the same as what the processor sent; `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` change it.
 */
function resourceOf(env: NodeJS.ProcessEnv): Resource {
  const base = resourceFromAttributes({ [ATTR_SERVICE_NAME]: "agentmesh" });
  const fromEnv = detectResources({ detectors: [envDetector] });
  const merged = base.merge(fromEnv);
  const serviceName = env.OTEL_SERVICE_NAME;
  return serviceName === undefined || serviceName === "" ? merged : merged.merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }));
}

function hrTime(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

const KINDS = { internal: SpanKind.INTERNAL, client: SpanKind.CLIENT, consumer: SpanKind.CONSUMER } as const;

function readableSpan(record: SpanRecord, resource: Resource): ReadableSpan {
  const status: SpanStatus = record.status.code === "error" ? { code: SpanStatusCode.ERROR, ...(record.status.message === undefined ? {} : { message: record.status.message }) } : { code: SpanStatusCode.UNSET };
  const links: Link[] = record.links.map((link) => ({ context: { traceId: link.traceId, spanId: link.spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true }, attributes: { ...link.attributes } }));
  return {
    name: record.name,
    kind: KINDS[record.kind],
    spanContext: () => ({ traceId: record.traceId, spanId: record.spanId, traceFlags: TraceFlags.SAMPLED }),
    ...(record.parentSpanId === undefined ? {} : { parentSpanContext: { traceId: record.traceId, spanId: record.parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: false } }),
    startTime: hrTime(record.startMs),
    endTime: hrTime(record.endMs),
    duration: hrTime(record.endMs - record.startMs),
    status,
    attributes: { ...record.attributes },
    links,
    events: [],
    ended: true,
    resource,
    instrumentationScope: SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

export class OtlpSpanExporter {
  private readonly exporter: OTLPTraceExporter;
  private readonly resource: Resource;

  constructor(readonly url: string, env: NodeJS.ProcessEnv) {
    this.exporter = new OTLPTraceExporter({ url });
    this.resource = resourceOf(env);
  }

  /** Resolves once the collector accepted the spans; rejects with TraceExportError otherwise. */
  export(records: readonly SpanRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    const spans = records.map((record) => readableSpan(record, this.resource));
    return new Promise((resolve, reject) => {
      this.exporter.export(spans, (result) => {
        if (result.code === ExportResultCode.SUCCESS) resolve();
        else reject(new TraceExportError(`exporting ${spans.length} spans to ${this.url} failed: ${result.error?.message ?? "unknown error"}`, { cause: result.error }));
      });
    });
  }

  shutdown(): Promise<void> {
    return this.exporter.shutdown();
  }
}
