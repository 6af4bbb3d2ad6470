import { DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import type { BaseConfig } from "../service/config.js";
import type { Logger } from "../service/logger.js";
import { connectNats, type Nats } from "./connection.js";
import { SubjectRoots } from "../contract/wire.js";

export interface EventsStreamOptions {
  name: string;
  replicas: number;
  duplicateWindowMs: number;
}

/** The one JetStream stream that holds every agent stream. */
export function eventsStreamConfig(options: EventsStreamOptions): Partial<StreamConfig> & { name: string } {
  return {
    name: options.name,
    // Agent event streams, and the data of Durable Streams protocol streams: one sequence, one store.
    subjects: [`${SubjectRoots.events}.>`, `${SubjectRoots.durable}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: options.replicas,
    duplicate_window: options.duplicateWindowMs * 1_000_000,
    allow_direct: true,
    // History is the audit trail: nothing may remove or rewrite a message.
    deny_delete: true,
    deny_purge: true,
  };
}

/**
 * Create the stream, or bring an existing one to our configuration. Safe to
 * run from every replica of every service at the same time.
 */
export async function ensureEventsStream(jsm: JetStreamManager, options: EventsStreamOptions, logger: Logger): Promise<void> {
  const config = eventsStreamConfig(options);
  try {
    const info = await jsm.streams.info(config.name);
    const current = info.config;
    const drifted =
      current.num_replicas !== config.num_replicas ||
      current.duplicate_window !== config.duplicate_window ||
      !current.allow_direct ||
      current.subjects.join(",") !== (config.subjects ?? []).join(",");
    if (drifted) {
      await jsm.streams.update(config.name, { ...current, ...config });
      logger.info({ stream: config.name }, "events stream updated");
    }
    return;
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.status !== 404) throw err;
  }
  try {
    await jsm.streams.add(config);
    logger.info({ stream: config.name }, "events stream created");
  } catch (err) {
    // Another process created it between our info and add: that is the goal reached.
    if (err instanceof JetStreamApiError && (await jsm.streams.info(config.name).then(() => true, () => false))) return;
    throw err;
  }
}

/** How every service starts: connect as configured, then make sure the events stream exists. */
export async function connectToEvents(config: BaseConfig, clientName: string, logger: Logger): Promise<Nats> {
  const nats = await connectNats({
    url: config.NATS_URL,
    name: clientName,
    streamName: config.EVENTS_STREAM,
    logger,
    requestTimeoutMs: config.NATS_REQUEST_TIMEOUT_MS,
    ...(config.NATS_USER === undefined ? {} : { user: config.NATS_USER, password: config.NATS_PASSWORD ?? "" }),
  });
  warnIfUnsupported(nats.nc.info?.version, config.EVENTS_REPLICAS, logger);
  await ensureEventsStream(nats.jsm, { name: config.EVENTS_STREAM, replicas: config.EVENTS_REPLICAS, duplicateWindowMs: config.EVENTS_DUPLICATE_WINDOW_MS }, logger);
  return nats;
}

/** The oldest nats-server supported for production (docs/ARCHITECTURE.md, "Failure behaviour"). */
export const SUPPORTED_NATS_SERVER = "2.10.0";

/**
 * Says so at start when the server is older than the supported one: everything works on 2.9 (the only one
 * installable on our build machines), but 2.9 is out of support upstream, and a replicated stream's follower was once
 * seen to diverge after a restart there.
 */
function warnIfUnsupported(version: string | undefined, replicas: number, logger: Logger): void {
  if (version === undefined) return;
  const [major = 0, minor = 0] = version.split(".").map((part) => Number.parseInt(part, 10));
  const [wantedMajor = 0, wantedMinor = 0] = SUPPORTED_NATS_SERVER.split(".").map((part) => Number.parseInt(part, 10));
  if (major > wantedMajor || (major === wantedMajor && minor >= wantedMinor)) return;
  logger.warn({ natsServer: version, supported: `>= ${SUPPORTED_NATS_SERVER}`, replicas }, `nats-server ${version} is older than ${SUPPORTED_NATS_SERVER}, the oldest supported for production${replicas > 1 ? " (a replicated stream's copies can diverge after a restart on 2.9)" : ""}`);
}
