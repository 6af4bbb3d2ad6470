import { createServer } from "node:http";
import { createRequire } from "node:module";
import { gunzipSync } from "node:zlib";
import { z } from "zod";

/**
 * A real OTLP/HTTP trace receiver on loopback, as a collector would be: `POST /v1/traces` with an
 * `application/x-protobuf` ExportTraceServiceRequest, answered 200 with an empty ExportTraceServiceResponse.
 *
 * What arrives is decoded with OpenTelemetry's own generated protobuf classes for the OTLP protos. The exporter we
 * ship (@opentelemetry/otlp-transformer 0.223) encodes with a hand-written writer and has no request decoder any
 * more; 0.57.2, the last release that ships the protobufjs classes generated from opentelemetry-proto, is installed
 * beside it under the alias `otlp-transformer-decoder` (a dev dependency) for this decoding only.
 */

interface GeneratedMessage {
  decode(bytes: Uint8Array): unknown;
  toObject(message: unknown, options: { longs: StringConstructor; bytes: StringConstructor; enums: NumberConstructor }): unknown;
}

function generatedRequestType(): GeneratedMessage {
  const root: unknown = createRequire(import.meta.url)("otlp-transformer-decoder/build/src/generated/root.js");
  let node: unknown = root;
  for (const key of ["opentelemetry", "proto", "collector", "trace", "v1", "ExportTraceServiceRequest"]) {
    if (typeof node !== "object" && typeof node !== "function") throw new Error(`no ${key} in the generated OTLP classes`);
    node = (node as Record<string, unknown>)[key];
  }
  if (typeof node !== "function") throw new Error("no ExportTraceServiceRequest in the generated OTLP classes");
  return node as unknown as GeneratedMessage;
}

const AnyValueSchema: z.ZodType<AnyValue> = z.lazy(() =>
  z.object({
    stringValue: z.string().optional(),
    boolValue: z.boolean().optional(),
    intValue: z.string().optional(),
    doubleValue: z.number().optional(),
    arrayValue: z.object({ values: z.array(AnyValueSchema).optional() }).optional(),
  }),
);
interface AnyValue {
  stringValue?: string | undefined;
  boolValue?: boolean | undefined;
  intValue?: string | undefined;
  doubleValue?: number | undefined;
  arrayValue?: { values?: AnyValue[] | undefined } | undefined;
}
const KeyValuesSchema = z.array(z.object({ key: z.string(), value: AnyValueSchema })).optional();

const RequestSchema = z.object({
  resourceSpans: z
    .array(
      z.object({
        resource: z.object({ attributes: KeyValuesSchema }).optional(),
        scopeSpans: z
          .array(
            z.object({
              scope: z.object({ name: z.string().optional(), version: z.string().optional() }).optional(),
              spans: z
                .array(
                  z.object({
                    traceId: z.string(),
                    spanId: z.string(),
                    parentSpanId: z.string().optional(),
                    name: z.string(),
                    kind: z.number().optional(),
                    startTimeUnixNano: z.string(),
                    endTimeUnixNano: z.string(),
                    attributes: KeyValuesSchema,
                    status: z.object({ code: z.number().optional(), message: z.string().optional() }).optional(),
                    links: z.array(z.object({ traceId: z.string(), spanId: z.string(), attributes: KeyValuesSchema })).optional(),
                  }),
                )
                .optional(),
            }),
          )
          .optional(),
      }),
    )
    .optional(),
});

export type Attribute = string | number | boolean | (string | number | boolean)[];

/** A span as it arrived, with ids in hex and times in milliseconds. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startMs: number;
  endMs: number;
  attributes: Record<string, Attribute>;
  status: { code: number; message?: string };
  links: { traceId: string; spanId: string }[];
  resource: Record<string, Attribute>;
  scope: string;
}

function valueOf(value: AnyValue): Attribute {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  return (value.arrayValue?.values ?? []).map((v) => {
    const item = valueOf(v);
    return Array.isArray(item) ? JSON.stringify(item) : item;
  });
}

function attributesOf(list: { key: string; value: AnyValue }[] | undefined): Record<string, Attribute> {
  return Object.fromEntries((list ?? []).map(({ key, value }) => [key, valueOf(value)]));
}

const hex = (base64: string): string => Buffer.from(base64, "base64").toString("hex");
const ms = (nanos: string): number => Number(BigInt(nanos) / 1_000_000n);

export function decodeTraceRequest(body: Uint8Array): ReceivedSpan[] {
  const type = generatedRequestType();
  const request = RequestSchema.parse(type.toObject(type.decode(body), { longs: String, bytes: String, enums: Number }));
  return (request.resourceSpans ?? []).flatMap((rs) =>
    (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((span) => {
        const parent = span.parentSpanId === undefined ? "" : hex(span.parentSpanId);
        return {
          traceId: hex(span.traceId),
          spanId: hex(span.spanId),
          ...(parent === "" ? {} : { parentSpanId: parent }),
          name: span.name,
          kind: span.kind ?? 0,
          startMs: ms(span.startTimeUnixNano),
          endMs: ms(span.endTimeUnixNano),
          attributes: attributesOf(span.attributes),
          status: { code: span.status?.code ?? 0, ...(span.status?.message === undefined || span.status.message === "" ? {} : { message: span.status.message }) },
          links: (span.links ?? []).map((link) => ({ traceId: hex(link.traceId), spanId: hex(link.spanId) })),
          resource: attributesOf(rs.resource?.attributes),
          scope: ss.scope?.name ?? "",
        };
      }),
    ),
  );
}

export interface OtlpReceiver {
  /** Base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it. */
  endpoint: string;
  spans: ReceivedSpan[];
  /** Requests received, with their content types. */
  requests: { contentType: string | undefined; spans: number }[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const receiver: OtlpReceiver = { endpoint: "", spans: [], requests: [], close: () => Promise.resolve() };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      try {
        const raw = Buffer.concat(chunks);
        const spans = decodeTraceRequest(req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw);
        receiver.spans.push(...spans);
        receiver.requests.push({ contentType: req.headers["content-type"], spans: spans.length });
        // An empty ExportTraceServiceResponse: full success.
        res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      } catch (err) {
        res.writeHead(400, { "content-type": "text/plain" }).end(err instanceof Error ? err.message : String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  receiver.endpoint = `http://127.0.0.1:${port}`;
  receiver.close = () =>
    new Promise((resolve) => {
      server.close(() => {
        resolve();
      });
      server.closeAllConnections();
    });
  return receiver;
}
