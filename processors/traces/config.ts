import { z } from "zod";
import { parseConfig } from "../../shared/service/config.js";

/**
 * The standard OpenTelemetry variables the traces processor reads itself; the exporter reads the others
 * (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `_COMPRESSION`, certificates) from the process environment.
 */
const protocol = z.literal("http/protobuf", { message: "only http/protobuf is supported (OTLP over HTTP, protobuf: what every collector accepts)" }).optional();

export const tracesConfigShape = {
  /** Base URL of an OTLP/HTTP collector; `/v1/traces` is appended. Default `http://localhost:4318`. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  /** The full traces URL, used as it is; wins over OTEL_EXPORTER_OTLP_ENDPOINT. */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol,
} as const;

export function loadTracesConfig(env: NodeJS.ProcessEnv) {
  return parseConfig(tracesConfigShape, env);
}
