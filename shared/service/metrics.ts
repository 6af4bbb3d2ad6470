import { collectDefaultMetrics, Counter, Gauge, Histogram, register } from "prom-client";

/**
 * Every Prometheus metric of the mesh, in one place (each service exposes the
 * ones it uses at /metrics). One service runs per process, so the default
 * registry is the service's registry.
 */

let defaultsCollected = false;
/** Process metrics (CPU, memory, event loop lag), once per process. */
export function collectProcessMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  collectDefaultMetrics({ prefix: "agentmesh_" });
}

export const metricsRegistry = register;

export const httpRequests = new Counter({ name: "agentmesh_http_requests_total", help: "HTTP requests answered by the gateway", labelNames: ["method", "route", "status"] as const });
export const httpDuration = new Histogram({
  name: "agentmesh_http_request_duration_seconds",
  help: "Time to answer an HTTP request (SSE: time to the first byte)",
  labelNames: ["method", "route"] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
});
export const eventsAppended = new Counter({ name: "agentmesh_events_appended_total", help: "Events appended, by outcome (stored, or duplicate of an idempotency key)", labelNames: ["outcome"] as const });
export const eventsRead = new Counter({ name: "agentmesh_events_read_total", help: "Stored events served to readers (JSON pages and SSE catch-up)" });
export const sseClients = new Gauge({ name: "agentmesh_sse_clients", help: "Open SSE connections" });
export const liveTails = new Gauge({ name: "agentmesh_live_tails", help: "Shared live tails (one JetStream consumer each)" });

export const processorEvents = new Counter({ name: "agentmesh_processor_events_total", help: "Events handled by processors, by outcome", labelNames: ["processor", "outcome"] as const });
export const processorSeconds = new Histogram({
  name: "agentmesh_processor_handle_seconds",
  help: "Time from delivery to ack of an event a processor reacts to",
  labelNames: ["processor"] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 120],
});
const lagProbes = new Map<string, () => Promise<number | null>>();
/** Sampled at scrape time from the consumer's info, so it costs nothing between scrapes. */
export const consumerPending = new Gauge({
  name: "agentmesh_processor_consumer_pending",
  help: "Events waiting in a processor's durable consumer (its lag)",
  labelNames: ["processor"] as const,
  async collect() {
    for (const [processor, probe] of lagProbes) {
      const pending = await probe();
      if (pending !== null) this.set({ processor }, pending);
    }
  },
});

export function registerLagGauge(processor: string, probe: () => Promise<number | null>): void {
  lagProbes.set(processor, probe);
}

export const webhookDeliveries = new Counter({ name: "agentmesh_webhook_deliveries_total", help: "Webhook delivery attempts, by outcome", labelNames: ["outcome"] as const });
export const breakerTrips = new Counter({ name: "agentmesh_breaker_trips_total", help: "Streams paused by the circuit breaker" });
export const scheduleDelay = new Histogram({ name: "agentmesh_schedule_fire_delay_seconds", help: "How late a schedule fired after its due time", buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5, 30] });
export const llmSeconds = new Histogram({ name: "agentmesh_llm_request_seconds", help: "Model request duration, by result", labelNames: ["status"] as const, buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] });
export const llmTokens = new Counter({ name: "agentmesh_llm_tokens_total", help: "Tokens reported by the model", labelNames: ["kind"] as const });
export const traceSpansExported = new Counter({ name: "agentmesh_trace_spans_exported_total", help: "Spans the traces processor sent to the OTLP collector, by outcome (exported, failed)", labelNames: ["outcome"] as const });
