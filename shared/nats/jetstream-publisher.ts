import { JetStreamApiError, type ApiError, type PubAck } from "@nats-io/jetstream";
import { createInbox, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { AgentmeshError } from "../contract/errors.js";

export interface PublishOptions {
  /** Nats-Msg-Id: JetStream stores a repeat within the duplicate window only once. */
  msgId?: string;
  /** Nats-Expected-Last-Subject-Sequence: store only if the subject's last message has this sequence. */
  expectLastSubjectSequence?: number;
  /** Nats-Expected-Last-Sequence: store only if the whole stream's last message has this sequence. */
  expectLastSequence?: number;
}

interface Outgoing {
  id: number;
  subject: string;
  data: Uint8Array;
  options: PublishOptions;
}

interface Pending {
  resolve(ack: PubAck): void;
  reject(err: unknown): void;
  deadline: number;
}

interface AckBody {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  domain?: string;
  error?: ApiError;
}

const ACK_HEAD = Buffer.from('{"stream":"');
const SEQ_KEY = Buffer.from('"seq":');
const CLOSE = 0x7d; // }
const COMMA = 0x2c; // ,
const QUOTE = 0x22; // "
const SPACE = 0x20;

/**
 * The common ack, `{"stream":"<name>", "seq":<n>}` as nats-server writes it, read
 * without decoding text or parsing JSON (it runs once per stored event); any
 * other shape (a domain, a duplicate, an error) is left to JSON.parse.
 */
function plainAck(data: Uint8Array): PubAck | undefined {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length < ACK_HEAD.length + SEQ_KEY.length + 2 || bytes[bytes.length - 1] !== CLOSE || bytes.compare(ACK_HEAD, 0, ACK_HEAD.length, 0, ACK_HEAD.length) !== 0) return undefined;
  // The name ends at the first quote, which must be followed by `,` (a space, in 2.9) and `"seq":`, so that
  // `"domain"` and the like take the slow path.
  const nameEnd = bytes.indexOf(QUOTE, ACK_HEAD.length);
  if (nameEnd < 0 || bytes[nameEnd + 1] !== COMMA) return undefined;
  const keyAt = bytes[nameEnd + 2] === SPACE ? nameEnd + 3 : nameEnd + 2;
  const digitsAt = keyAt + SEQ_KEY.length;
  if (digitsAt >= bytes.length - 1 || bytes.compare(SEQ_KEY, 0, SEQ_KEY.length, keyAt, digitsAt) !== 0) return undefined;
  let seq = 0;
  for (let i = digitsAt; i < bytes.length - 1; i++) {
    const digit = (bytes[i] ?? 0) - 0x30;
    if (bytes[i] === COMMA || digit < 0 || digit > 9) return undefined;
    seq = seq * 10 + digit;
  }
  return { stream: bytes.toString("utf8", ACK_HEAD.length, nameEnd), seq, duplicate: false, domain: "" };
}

/**
 * JetStream publishes whose acks come back on one subscription, matched by
 * reply subject, instead of one request (a subscription entry, a timer and,
 * in the v3 client, an Error object with a stack trace) per message. Under
 * load, the publishes of one event-loop turn go to the socket together, so
 * concurrent HTTP requests share writes; a publish with nothing else in
 * flight goes at once. Same semantics as `js.publish`: resolves with
 * the ack, rejects with JetStreamApiError when JetStream refuses, and with
 * NATS_UNAVAILABLE when no stream answers or no ack comes in time. Its
 * `details.stored` says whether the message may have been stored: false when
 * it was never sent or no stream took it (a leader election), "unknown" when
 * the ack did not come (it may be stored).
 */
export class JetStreamPublisher {
  private readonly prefix: string;
  private readonly pending = new Map<number, Pending>();
  private readonly subscription: Subscription;
  private readonly sweeper: NodeJS.Timeout;
  private queued: Outgoing[] = [];
  private nextId = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
  ) {
    this.prefix = createInbox();
    this.subscription = nc.subscribe(`${this.prefix}.*`, {
      callback: (err, msg) => {
        this.onReply(err, msg);
      },
    });
    // Every entry waits the same time, so the oldest is first to expire: a coarse sweep is enough.
    this.sweeper = setInterval(() => {
      this.expire();
    }, Math.max(10, Math.min(250, timeoutMs / 4)));
    this.sweeper.unref();
  }

  publish(subject: string, data: Uint8Array, options: PublishOptions = {}): Promise<PubAck> {
    return new Promise<PubAck>((resolve, reject) => {
      const id = ++this.nextId;
      this.pending.set(id, { resolve, reject, deadline: performance.now() + this.timeoutMs });
      this.queued.push({ id, subject, data, options });
      if (this.queued.length === 1) {
        // Idle (nothing else awaiting an ack): send at once. Busy: wait for the end of this event-loop turn, so
        // that the publishes of every request handled in it go out in one socket write.
        const flush = (): void => {
          this.flush();
        };
        if (this.pending.size === 1) queueMicrotask(flush);
        else setImmediate(flush);
      }
    });
  }

  close(): void {
    clearInterval(this.sweeper);
    this.subscription.unsubscribe();
    for (const [id, waiting] of this.pending) {
      this.pending.delete(id);
      waiting.reject(new AgentmeshError("NATS_UNAVAILABLE", "The NATS connection closed before JetStream acknowledged", { details: { stored: "unknown" } }));
    }
  }

  private flush(): void {
    const batch = this.queued;
    this.queued = [];
    for (const out of batch) {
      const { msgId, expectLastSubjectSequence, expectLastSequence } = out.options;
      let headers;
      if (msgId !== undefined || expectLastSubjectSequence !== undefined || expectLastSequence !== undefined) {
        headers = natsHeaders();
        if (msgId !== undefined) headers.set("Nats-Msg-Id", msgId);
        if (expectLastSubjectSequence !== undefined) headers.set("Nats-Expected-Last-Subject-Sequence", String(expectLastSubjectSequence));
        if (expectLastSequence !== undefined) headers.set("Nats-Expected-Last-Sequence", String(expectLastSequence));
      }
      try {
        this.nc.publish(out.subject, out.data, { reply: `${this.prefix}.${out.id}`, ...(headers === undefined ? {} : { headers }) });
      } catch (err) {
        this.settle(out.id, (waiting) => {
          waiting.reject(new AgentmeshError("NATS_UNAVAILABLE", undefined, { cause: err, details: { stored: false } }));
        });
      }
    }
  }

  private onReply(err: Error | null, msg: Msg): void {
    if (err !== null) return;
    const id = Number(msg.subject.slice(this.prefix.length + 1));
    this.settle(id, (waiting) => {
      if (msg.headers?.code === 503) {
        waiting.reject(new AgentmeshError("NATS_UNAVAILABLE", "No JetStream stream answered the publish", { details: { stored: false } }));
        return;
      }
      const fast = plainAck(msg.data);
      if (fast !== undefined) {
        waiting.resolve(fast);
        return;
      }
      let body: AckBody;
      try {
        body = msg.json<AckBody>();
      } catch (parseError) {
        waiting.reject(new AgentmeshError("INTERNAL", "JetStream answered a publish with something that is not an ack", { cause: parseError }));
        return;
      }
      if (body.error !== undefined) waiting.reject(new JetStreamApiError(body.error));
      else waiting.resolve({ stream: body.stream ?? "", seq: body.seq ?? 0, duplicate: body.duplicate ?? false, domain: body.domain ?? "" });
    });
  }

  private settle(id: number, action: (waiting: Pending) => void): void {
    const waiting = this.pending.get(id);
    if (waiting === undefined) return;
    this.pending.delete(id);
    action(waiting);
  }

  private expire(): void {
    // The monotonic clock: a wall clock set back would otherwise keep publishes waiting long past their timeout.
    const now = performance.now();
    for (const [id, waiting] of this.pending) {
      if (waiting.deadline > now) break;
      this.pending.delete(id);
      waiting.reject(new AgentmeshError("NATS_UNAVAILABLE", `JetStream did not acknowledge a publish within ${this.timeoutMs} ms`, { details: { stored: "unknown" } }));
    }
  }
}
