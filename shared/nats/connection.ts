import {
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  RequestError,
  TimeoutError,
  connect,
  type NatsConnection,
} from "@nats-io/transport-node";
import { jetstream, jetstreamManager, JetStreamApiError, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { AgentmeshError } from "../contract/errors.js";
import { JetStreamPublisher } from "./jetstream-publisher.js";
import type { Logger } from "../service/logger.js";
import { JetStreamErrorCodes } from "../contract/wire.js";

/** The handles every service needs to talk to JetStream, plus the stream that holds all agent streams. */
export interface Nats {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly streamName: string;
  /** Publishes to JetStream with acks on one shared subscription (use it rather than js.publish). */
  readonly publisher: JetStreamPublisher;
  /** True while the client holds a connection to a server. */
  isConnected(): boolean;
  /**
   * Call `listener` each time the connection is re-established; returns the unsubscribe. A consumer that was
   * waiting for messages across the break may stay silent for tens of seconds, until the client's heartbeat check
   * resets it: long reads restart from where they were instead.
   */
  onReconnect(listener: () => void): () => void;
}

export interface ConnectOptions {
  url: string;
  name: string;
  streamName: string;
  logger: Logger;
  /** How long a JetStream request (publish ack, API call) may take before it fails. */
  requestTimeoutMs?: number;
  user?: string;
  password?: string;
}

/**
 * Connect and keep reconnecting forever: a service outlives NATS restarts and
 * answers 503 meanwhile instead of exiting.
 */
export async function connectNats(options: ConnectOptions): Promise<Nats> {
  const { logger } = options;
  const nc = await connect({
    servers: options.url.split(","),
    ...(options.user === undefined ? {} : { user: options.user, pass: options.password ?? "" }),
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    // The client otherwise builds two Error objects (with stack traces) per request, for
    // nicer async stacks: profiled at ~30% of the gateway's CPU on single appends.
    noAsyncTraces: true,
  });
  let connected = true;
  const reconnectListeners = new Set<() => void>();
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") connected = false;
      if (status.type === "reconnect") {
        connected = true;
        for (const listener of [...reconnectListeners]) listener();
      }
      if (status.type === "disconnect" || status.type === "reconnect" || status.type === "error") {
        logger.warn({ nats: status }, `nats ${status.type}`);
      }
    }
  })();
  const timeout = options.requestTimeoutMs ?? 5_000;
  const js = jetstream(nc, { timeout });
  const jsm = await jetstreamManager(nc, { timeout, checkAPI: false });
  const publisher = new JetStreamPublisher(nc, timeout);
  void nc.closed().then(() => {
    publisher.close();
  });
  logger.info({ server: nc.info?.server_name, version: nc.info?.version }, "connected to nats");
  return {
    nc,
    js,
    jsm,
    publisher,
    streamName: options.streamName,
    isConnected: () => connected && !nc.isClosed(),
    onReconnect: (listener) => {
      reconnectListeners.add(listener);
      return () => {
        reconnectListeners.delete(listener);
      };
    },
  };
}

/** A compare-and-set lost to another writer (wrong last sequence): read again and decide again. Anything else is a real failure. */
export function isCompareAndSetConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamErrorCodes.wrongLastSequence || err.code === JetStreamErrorCodes.wrongLastSequenceUnknown);
}

/** Room for the headers JetStream adds to a message, below the server's max_payload. */
const HEADER_ALLOWANCE_BYTES = 4096;

/** The largest body one JetStream message may carry on this connection. */
export function maxMessageBytes(nats: Nats): number {
  return (nats.nc.info?.max_payload ?? 1024 * 1024) - HEADER_ALLOWANCE_BYTES;
}

const UNAVAILABLE = [TimeoutError, RequestError, NoRespondersError, ClosedConnectionError, DrainingConnectionError, ConnectionError];

/**
 * Turn a failure talking to NATS into what a client should see: timeouts, no
 * responders and lost connections are NATS_UNAVAILABLE (retry later);
 * anything else is a bug or a refusal we did not expect, so INTERNAL.
 */
export function natsFailure(err: unknown): AgentmeshError {
  if (err instanceof AgentmeshError) return err;
  if (UNAVAILABLE.some((kind) => err instanceof kind)) return new AgentmeshError("NATS_UNAVAILABLE", undefined, { cause: err });
  const message = err instanceof JetStreamApiError ? `JetStream refused the request: ${err.message}` : undefined;
  return new AgentmeshError("INTERNAL", message, { cause: err });
}
