import { randomBytes } from "node:crypto";
import { AgentmeshError } from "../../../shared/contract/errors.js";
import { ZERO_OFFSET } from "../offsets.js";
import type { Link, LinkType, SubscriptionRecord, Wake } from "./record.js";
import { globMatches } from "./glob.js";

/**
 * The subscription state machine, pure: each transition takes a record (and
 * the linked streams' tails) and returns the next record, or the same object
 * when nothing changes. The store applies them by compare-and-set, so the
 * replica whose write wins is the only one that acts on it (delivers a
 * webhook, appends a wake event): that is what makes one wake per change.
 */

/** Acked offset of a stream linked after the subscription was made: its first data is pending. */
export const BEFORE_START = "-1";

/** Tails of streams by protocol path; a missing or empty stream is ZERO_OFFSET. */
export type Tails = Readonly<Record<string, string>>;

export interface StreamInfo {
  path: string;
  link_type: LinkType;
  acked_offset: string;
  tail_offset: string;
  has_pending: boolean;
}

export interface AckBody {
  wake_id: string;
  generation: number;
  acks?: { stream?: string | undefined; path?: string | undefined; offset: string }[] | undefined;
  done?: boolean | undefined;
}

export function newWakeId(): string {
  return `w_${randomBytes(12).toString("hex")}`;
}

function tailOf(tails: Tails, path: string): string {
  return tails[path] ?? ZERO_OFFSET;
}

/** Offsets are fixed-width strings (offsets.ts), so they compare as strings; `-1` sorts before all of them. */
export function isPending(link: Link, tail: string): boolean {
  return tail !== ZERO_OFFSET && tail > link.acked;
}

export function linkTypeOf(link: Link): LinkType {
  return link.types.includes("explicit") ? "explicit" : "glob";
}

export function streamInfos(record: SubscriptionRecord, tails: Tails): StreamInfo[] {
  return Object.entries(record.links)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([path, link]) => ({ path, link_type: linkTypeOf(link), acked_offset: link.acked, tail_offset: tailOf(tails, path), has_pending: isPending(link, tailOf(tails, path)) }));
}

export function hasPendingWork(record: SubscriptionRecord, tails: Tails): boolean {
  return Object.entries(record.links).some(([path, link]) => isPending(link, tailOf(tails, path)));
}

/** Whether a stream belongs to the subscription's glob (the wake stream never does: its own events would wake it). */
export function matchesPattern(record: SubscriptionRecord, path: string): boolean {
  return record.config.pattern !== null && path !== record.config.wakeStream && globMatches(record.config.pattern, path);
}

/** Link a stream (`acked` for a new link), or add a type to an existing link. */
export function addLink(record: SubscriptionRecord, path: string, type: LinkType, acked: string): SubscriptionRecord {
  const link = record.links[path];
  if (link?.types.includes(type) === true) return record;
  const next: Link = link === undefined ? { types: [type], acked } : { ...link, types: [...link.types, type] };
  return { ...record, links: { ...record.links, [path]: next } };
}

/** Drop one reason for a link; the link goes with its last reason. */
export function removeLinkType(record: SubscriptionRecord, path: string, type: LinkType): SubscriptionRecord {
  const link = record.links[path];
  if (link?.types.includes(type) !== true) return record;
  const types = link.types.filter((t) => t !== type);
  if (types.length === 0) return unlink(record, path);
  return { ...record, links: { ...record.links, [path]: { ...link, types } } };
}

/** A deleted stream is no longer followed, however it was linked. */
export function unlink(record: SubscriptionRecord, path: string): SubscriptionRecord {
  if (record.links[path] === undefined) return record;
  return { ...record, links: Object.fromEntries(Object.entries(record.links).filter(([linked]) => linked !== path)) };
}

const idle = (wake: Wake): Wake => ({ ...wake, wakeId: null, snapshot: null, holder: null, leaseUntil: null, retryCount: 0, nextAttemptAt: null });

function snapshotOf(record: SubscriptionRecord, tails: Tails): Record<string, string> {
  return Object.fromEntries(Object.keys(record.links).map((path) => [path, tailOf(tails, path)]));
}

/**
 * A wake is created only when none is open (no wake id, no holder) and something is pending. A webhook wake is held
 * by its delivery from the start (`holder: webhook`), with the lease the callback renews.
 */
export function createWake(record: SubscriptionRecord, tails: Tails, nowMs: number, wakeId = newWakeId()): SubscriptionRecord {
  if (record.wake.wakeId !== null || record.wake.holder !== null || !hasPendingWork(record, tails)) return record;
  const webhook = record.config.type === "webhook";
  return {
    ...record,
    wake: {
      ...record.wake,
      generation: record.wake.generation + 1,
      wakeId,
      snapshot: snapshotOf(record, tails),
      holder: webhook ? "webhook" : null,
      leaseUntil: webhook ? nowMs + record.config.leaseTtlMs : null,
      nextAttemptAt: null,
    },
  };
}

export type ClaimOutcome = { kind: "claimed"; record: SubscriptionRecord } | { kind: "busy"; holder: string; generation: number } | { kind: "idle" };

/** A pull-wake worker takes the open wake (or a new one, when work is pending) with a lease. */
export function claim(record: SubscriptionRecord, worker: string, tails: Tails, nowMs: number): ClaimOutcome {
  const { wake } = record;
  if (wake.holder !== null && (wake.leaseUntil === null || wake.leaseUntil > nowMs)) return { kind: "busy", holder: wake.holder, generation: wake.generation };
  const open = wake.holder !== null ? expire(record, nowMs) : record;
  const woken = open.wake.wakeId === null ? createWake(open, tails, nowMs) : open;
  if (woken.wake.wakeId === null) return { kind: "idle" };
  return { kind: "claimed", record: { ...woken, wake: { ...woken.wake, holder: worker, leaseUntil: nowMs + record.config.leaseTtlMs } } };
}

/** 409 FENCED unless the token and the body name the current wake. */
export function checkFence(record: SubscriptionRecord, tokenEpoch: number, body: { wake_id: string; generation: number }): void {
  const { wake } = record;
  if (wake.wakeId === null || tokenEpoch !== wake.generation || body.generation !== wake.generation || body.wake_id !== wake.wakeId) {
    throw new AgentmeshError("FENCED", undefined, { details: { generation: wake.generation } });
  }
}

/** Acks apply all or nothing: each must name a linked stream, at or after its acked offset and not past its tail. */
export function applyAcks(record: SubscriptionRecord, acks: NonNullable<AckBody["acks"]>, tails: Tails): SubscriptionRecord {
  const links = { ...record.links };
  for (const ack of acks) {
    const path = ack.stream ?? ack.path ?? "";
    const link = links[path];
    if (link === undefined || ack.offset === BEFORE_START || ack.offset < link.acked || ack.offset > tailOf(tails, path)) {
      throw new AgentmeshError("INVALID_OFFSET", `Cannot ack ${JSON.stringify(path)} at ${JSON.stringify(ack.offset)}`);
    }
    links[path] = { ...link, acked: ack.offset };
  }
  return { ...record, links };
}

/** A valid callback or ack: the acks, then either the lease renewed or (done) the wake closed. */
export function acknowledge(record: SubscriptionRecord, tokenEpoch: number, body: AckBody, tails: Tails, nowMs: number): SubscriptionRecord {
  checkFence(record, tokenEpoch, body);
  const acked = applyAcks(record, body.acks ?? [], tails);
  if (body.done === true) return { ...acked, wake: idle(acked.wake) };
  return { ...acked, wake: { ...acked.wake, leaseUntil: nowMs + record.config.leaseTtlMs } };
}

export function release(record: SubscriptionRecord, tokenEpoch: number, body: { wake_id: string; generation: number }): SubscriptionRecord {
  checkFence(record, tokenEpoch, body);
  return { ...record, wake: idle(record.wake) };
}

/** A lease that ran out frees the wake; the caller wakes again if work is still pending. */
export function expire(record: SubscriptionRecord, nowMs: number): SubscriptionRecord {
  const { leaseUntil } = record.wake;
  if (leaseUntil === null || leaseUntil > nowMs) return record;
  return { ...record, wake: idle(record.wake) };
}

function isCurrent(record: SubscriptionRecord, generation: number, wakeId: string): boolean {
  return record.wake.generation === generation && record.wake.wakeId === wakeId;
}

/** The receiver answered `{done: true}`: ack the wake's snapshot (never moving an offset back) and close it. */
export function autoAck(record: SubscriptionRecord, generation: number, wakeId: string): SubscriptionRecord {
  if (!isCurrent(record, generation, wakeId)) return record;
  const links = { ...record.links };
  for (const [path, tail] of Object.entries(record.wake.snapshot ?? {})) {
    const link = links[path];
    if (link !== undefined && tail > link.acked) links[path] = { ...link, acked: tail };
  }
  return { ...record, status: "active", links, wake: idle(record.wake) };
}

export function delivered(record: SubscriptionRecord, generation: number, wakeId: string): SubscriptionRecord {
  if (!isCurrent(record, generation, wakeId) || (record.status === "active" && record.wake.retryCount === 0)) return record;
  return { ...record, status: "active", wake: { ...record.wake, retryCount: 0 } };
}

const MAX_RETRY_DELAY_MS = 60_000;

/** Backoff after `n` failures: 1 s·2^(n-1), ±20 %, at most a minute. */
export function retryDelayMs(failures: number, random = Math.random()): number {
  const base = Math.min(MAX_RETRY_DELAY_MS, 1000 * 2 ** Math.max(0, failures - 1));
  return Math.min(MAX_RETRY_DELAY_MS, Math.round(base * (0.8 + 0.4 * random)));
}

/** A delivery failed: the wake stays open, unheld, until its retry is due. */
export function deliveryFailed(record: SubscriptionRecord, generation: number, wakeId: string, nowMs: number): SubscriptionRecord {
  if (!isCurrent(record, generation, wakeId)) return record;
  const retryCount = record.wake.retryCount + 1;
  return { ...record, status: "failed", wake: { ...record.wake, holder: null, leaseUntil: null, retryCount, nextAttemptAt: nowMs + retryDelayMs(retryCount) } };
}

/** A due retry: whoever wins this write delivers the wake again, with a new lease. */
export function takeRetry(record: SubscriptionRecord, nowMs: number): SubscriptionRecord {
  const { wake } = record;
  if (wake.wakeId === null || wake.holder !== null || wake.nextAttemptAt === null || wake.nextAttemptAt > nowMs) return record;
  return { ...record, wake: { ...wake, holder: "webhook", leaseUntil: nowMs + record.config.leaseTtlMs, nextAttemptAt: null } };
}
