import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { Logger } from "./logger.js";

/**
 * Follow every key of a KV bucket: `onEntry` hears each current key first,
 * then every change, in order. Resolves once the current keys are delivered
 * (the watcher marks the last of them with delta 0; an empty bucket replays
 * none), so a caller starts with the whole index. Returns the way to stop.
 */
export async function watchBucket(kv: KV, onEntry: (entry: KvWatchEntry) => void, logger: Logger, what: string): Promise<() => void> {
  const updates = await kv.watch();
  let ready: (() => void) | undefined;
  const initialised = new Promise<void>((resolve) => (ready = resolve));
  if ((await kv.status()).values === 0) ready?.();
  void (async () => {
    for await (const entry of updates) {
      onEntry(entry);
      if (entry.delta === 0 || entry.isUpdate) ready?.();
    }
  })().catch((err: unknown) => {
    logger.error({ err }, `${what} watch ended`);
  });
  await initialised;
  return () => {
    updates.stop();
  };
}
