import type { EventEnvelope } from "../contract/envelope.js";
import { LogIndex } from "./log-index.js";
import type { Logger } from "../service/logger.js";
import type { Nats } from "../nats/connection.js";
import { kvKeyOf, type StreamPath } from "../contract/subjects.js";
import { InboundConfiguredSchema, StreamPausedSchema } from "../contract/events/stream.js";
import { KvBuckets, SystemEventTypes } from "../contract/wire.js";

/** Whether a stream is paused: its last stream/paused or stream/resumed. */
export interface PauseStatus {
  paused: boolean;
  offset: number;
  reason?: string;
}

/** The stream's inbound webhook secret: its last webhook/inbound-configured. */
export interface InboundConfig {
  secret: string | null;
  offset: number;
}

/**
 * The per-stream facts every append path must check at once (is it paused?
 * what secret signs its inbound webhooks?), indexed from the log. Whoever
 * appends the events that change them records them here (`observe`).
 */
export class StreamIndexes {
  private constructor(
    private readonly pauses: LogIndex<PauseStatus>,
    private readonly inbound: LogIndex<InboundConfig>,
  ) {}

  static async open(nats: Nats, logger: Logger, replicas = 1): Promise<StreamIndexes> {
    const [pauses, inbound] = await Promise.all([
      LogIndex.open<PauseStatus>(nats, KvBuckets.streamStatus, logger, replicas),
      LogIndex.open<InboundConfig>(nats, KvBuckets.inboundWebhooks, logger, replicas),
    ]);
    return new StreamIndexes(pauses, inbound);
  }

  isPaused(path: StreamPath): boolean {
    return this.pauses.get(kvKeyOf(path))?.paused ?? false;
  }

  pauseStatus(path: StreamPath): PauseStatus | undefined {
    return this.pauses.get(kvKeyOf(path));
  }

  /** The stream's inbound webhook configuration (its secret as stored, sealed), or undefined when none was made. */
  inboundConfig(path: StreamPath): InboundConfig | undefined {
    return this.inbound.get(kvKeyOf(path));
  }

  /**
   * Whether `event` changes a fact these indexes hold and is newer than what they hold for its stream: its writer
   * stored it and could not record it (it died in between), and whoever reads it in the log records it now.
   */
  isBehind(path: StreamPath, event: EventEnvelope): boolean {
    switch (event.type) {
      case SystemEventTypes.paused:
      case SystemEventTypes.agentPaused:
      case SystemEventTypes.resumed:
        return (this.pauseStatus(path)?.offset ?? 0) < event.offset;
      case SystemEventTypes.inboundConfigured:
        return (this.inboundConfig(path)?.offset ?? 0) < event.offset;
      default:
        return false;
    }
  }

  /** Record what stored events change. */
  async observe(path: StreamPath, events: readonly EventEnvelope[]): Promise<void> {
    for (const event of events) {
      if (event.type === SystemEventTypes.paused || event.type === SystemEventTypes.agentPaused) {
        const payload = StreamPausedSchema.safeParse(event.payload);
        await this.pauses.record(kvKeyOf(path), { paused: true, offset: event.offset, ...(payload.success ? { reason: payload.data.reason } : {}) });
      } else if (event.type === SystemEventTypes.resumed) {
        await this.pauses.record(kvKeyOf(path), { paused: false, offset: event.offset });
      } else if (event.type === SystemEventTypes.inboundConfigured) {
        const payload = InboundConfiguredSchema.safeParse(event.payload);
        await this.inbound.record(kvKeyOf(path), { secret: payload.success ? (payload.data.secret ?? null) : null, offset: event.offset });
      }
    }
  }

  close(): void {
    this.pauses.close();
    this.inbound.close();
  }
}
