import type { JsMsg } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { followLasting } from "./lasting-consumer.js";
import type { Logger } from "../service/logger.js";
import type { Nats } from "./connection.js";

/** One change of a KV bucket, as a watcher sees it. */
export interface KvChange {
  key: string;
  operation: "PUT" | "DEL" | "PURGE";
  /** The entry's revision (its sequence in the bucket's stream). */
  revision: number;
  /** The value's JSON, parsed (the caller knows its shape: our own indexes write it). */
  json(): unknown;
}

/** KV stores each key as a message on `$KV.<bucket>.<key>` in the stream `KV_<bucket>`; deletes carry a header. */
function changeOf(m: JsMsg, prefix: string): KvChange {
  const operation = m.headers?.get("KV-Operation");
  return {
    key: m.subject.slice(prefix.length),
    operation: operation === "DEL" || operation === "PURGE" ? operation : "PUT",
    revision: m.seq,
    json: () => m.json(),
  };
}

/**
 * Follow every key of a KV bucket for as long as the service runs: `onChange`
 * hears each current key first, then every change, in order, and keeps
 * hearing them across reconnects and the loss of the server that hosted the
 * watch (shared/nats/lasting-consumer.ts). Resolves once the current keys are
 * delivered, so a caller starts with the whole index. Returns the way to stop.
 */
export async function watchBucket(nats: Nats, kv: KV, onChange: (change: KvChange) => void, logger: Logger, what: string): Promise<() => void> {
  const bucket = (await kv.status()).bucket;
  const prefix = `$KV.${bucket}.`;
  const following = followLasting(nats, {
    stream: `KV_${bucket}`,
    filter: `${prefix}>`,
    start: "last-per-subject",
    onMessage: (m) => {
      onChange(changeOf(m, prefix));
    },
    logger,
    what: `${what} watch`,
  });
  await following.caughtUp;
  return () => {
    following.stop();
  };
}
