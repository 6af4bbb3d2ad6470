import { batchBody, eventInput } from "../support/events.js";
import { postLoad } from "../support/post-load.js";

/**
 * HTTP append throughput with autocannon: closed-loop keep-alive
 * connections, each sending its next request as soon as the previous
 * response arrives. Only 2xx answers count as appended events.
 */

export interface AppendThroughput {
  connections: number;
  eventsPerRequest: number;
  seconds: number;
  requests: number;
  eventsPerSec: number;
  requestsPerSec: number;
  latencyMs: { p50: number; p99: number; max: number };
  errors: number;
  non2xx: number;
}

export interface AppendOptions {
  baseUrl: string;
  path: string;
  connections: number;
  seconds: number;
  /** 1: a single event object per request; more: a JSON array of that many events. */
  eventsPerRequest: number;
}

export async function appendThroughput(options: AppendOptions): Promise<AppendThroughput> {
  const body = options.eventsPerRequest === 1 ? JSON.stringify(eventInput()) : batchBody(options.eventsPerRequest);
  const result = await postLoad({ url: `${options.baseUrl}/streams${options.path}`, contentType: "application/json", body, connections: options.connections, seconds: options.seconds });
  const ok = result["2xx"];
  return {
    connections: options.connections,
    eventsPerRequest: options.eventsPerRequest,
    seconds: result.duration,
    requests: ok,
    eventsPerSec: Math.round((ok * options.eventsPerRequest) / result.duration),
    requestsPerSec: Math.round(ok / result.duration),
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
    errors: result.errors,
    non2xx: result.non2xx,
  };
}
