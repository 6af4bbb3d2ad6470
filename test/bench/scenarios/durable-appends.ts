import type { Result } from "autocannon";
import { createStream } from "../support/durable-streams-http.js";
import { keepAliveAgent } from "../support/http.js";
import { postLoad } from "../support/post-load.js";

/**
 * Durable Streams small-message append throughput: autocannon's closed-loop
 * keep-alive connections POST the same small body to one stream, each
 * sending its next append as soon as the previous one is answered. Only 2xx
 * answers count; anything else fails the run, since a server that refuses
 * appends under load has not appended them.
 */

export interface DurableAppendsOptions {
  /** The stream's URL; it is created here. */
  streamUrl: string;
  contentType: string;
  messageBytes: number;
  connections: number;
  seconds: number;
}

export interface DurableAppendsResult {
  connections: number;
  messageBytes: number;
  seconds: number;
  appends: number;
  appendsPerSec: number;
  latencyMs: { p50: number; p99: number; max: number };
}

function everyAppendStored(result: Result): void {
  if (result["2xx"] === 0 || result.non2xx > 0 || result.errors > 0) {
    const statuses = Object.entries(result.statusCodeStats).map(([status, { count }]) => `${status}: ${count}`).join(", ");
    throw new Error(`appends failed under load: ${result["2xx"]} answered 2xx, ${result.non2xx} other statuses (${statuses}), ${result.errors} socket errors (${result.timeouts} timeouts)`);
  }
}

export async function durableAppends(options: DurableAppendsOptions): Promise<DurableAppendsResult> {
  const agent = keepAliveAgent(1);
  try {
    await createStream(agent, options.streamUrl, options.contentType);
  } finally {
    agent.destroy();
  }
  const body = Buffer.from("x".repeat(options.messageBytes));
  const result = await postLoad({ url: options.streamUrl, contentType: options.contentType, body, connections: options.connections, seconds: options.seconds, check: everyAppendStored });
  const ok = result["2xx"];
  return {
    connections: options.connections,
    messageBytes: options.messageBytes,
    seconds: result.duration,
    appends: ok,
    appendsPerSec: Math.round(ok / result.duration),
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
  };
}
