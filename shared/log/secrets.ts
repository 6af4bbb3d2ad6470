import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { z } from "zod";
import { AgentmeshError } from "../contract/errors.js";
import { isSealed, SEALED_PREFIX, SecretFields } from "../contract/credentials.js";
import type { StreamPath } from "../contract/subjects.js";

/**
 * Credentials that events carry (webhook secrets, and whatever later events
 * add) are stored sealed: AES-256-GCM under a key from configuration, bound to
 * the stream, the event type and the field, so the log stays the one source of
 * truth while no reader of it (JSON, SSE, Durable Streams, forks) ever sees the
 * secret, and a sealed value copied into another stream does not open there.
 * docs/SECURITY.md ("Where secrets live") says why this and not a side store.

 */

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** `SECRETS_KEYS`: `id:base64key[,id:base64key...]`, 32-byte keys; the first seals, all open (key rotation). */
export const SecretKeysSchema = z
  .string()
  .min(1)
  .transform((value, ctx) => {
    const keys: { id: string; key: Buffer }[] = [];
    for (const part of value.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
      const colon = part.indexOf(":");
      const id = colon === -1 ? "" : part.slice(0, colon);
      const key = Buffer.from(colon === -1 ? "" : part.slice(colon + 1), "base64");
      if (!KEY_ID.test(id) || key.byteLength !== 32) {
        ctx.addIssue({ code: "custom", message: "each key is <id>:<32 bytes in base64> (id: 1-32 of A-Z a-z 0-9 _ -); `openssl rand -base64 32` makes one" });
        return z.NEVER;
      }
      if (keys.some((k) => k.id === id)) {
        ctx.addIssue({ code: "custom", message: `key id ${id} appears twice` });
        return z.NEVER;
      }
      keys.push({ id, key });
    }
    if (keys.length === 0) {
      ctx.addIssue({ code: "custom", message: "at least one key" });
      return z.NEVER;
    }
    return keys;
  });

export type SecretKeys = z.output<typeof SecretKeysSchema>;

/** What a sealed value is bound to: the same secret in another stream, type or field does not open. */
function context(path: StreamPath, type: string, field: string): Buffer {
  return Buffer.from(`${path}\n${type}\n${field}`);
}

export class SecretBox {
  private readonly byId: ReadonlyMap<string, Buffer>;
  private readonly sealing: { id: string; key: Buffer };

  constructor(keys: SecretKeys) {
    const first = keys[0];
    if (first === undefined) throw new Error("a secret box needs at least one key");
    this.sealing = first;
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  seal(plain: string, path: StreamPath, type: string, field: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.sealing.key, iv);
    cipher.setAAD(context(path, type, field));
    const sealed = Buffer.concat([iv, cipher.update(plain, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return `${SEALED_PREFIX}${this.sealing.id}:${sealed.toString("base64url")}`;
  }

  /** The secret, or an error naming why it cannot be opened (unknown key id, tampered, or bound elsewhere). */
  open(sealed: string, path: StreamPath, type: string, field: string): string {
    if (!isSealed(sealed)) throw new Error("not a sealed value");
    const rest = sealed.slice(SEALED_PREFIX.length);
    const colon = rest.indexOf(":");
    const id = rest.slice(0, colon);
    const key = this.byId.get(id);
    if (colon === -1 || key === undefined) throw new Error(`sealed with key ${JSON.stringify(id)}, which SECRETS_KEYS does not hold`);
    const bytes = Buffer.from(rest.slice(colon + 1), "base64url");
    if (bytes.byteLength < 12 + 16) throw new Error("sealed value is truncated");
    const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, 12));
    decipher.setAAD(context(path, type, field));
    decipher.setAuthTag(bytes.subarray(bytes.byteLength - 16));
    try {
      return Buffer.concat([decipher.update(bytes.subarray(12, bytes.byteLength - 16)), decipher.final()]).toString("utf8");
    } catch (err) {
      throw new Error("sealed value does not open: tampered, or sealed for another stream, type or field", { cause: err });
    }
  }
}

/** Events that carry another event to append later (as the mesh): its credentials are sealed for that event. */
const NESTED_APPENDS: Readonly<Record<string, (payload: Record<string, unknown>) => unknown>> = {
  "schedule/added": (payload) => payload.append,
};

function asRecord(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/**
 * The payload as it is stored: each credential field sealed, bound to the stream, type and field, including in
 * an event that a schedule will append later (sealed for that event, which the scheduler stores as it is).
 *
 * The gateway (which holds the box) refuses a value that is already sealed: a client sends the secret itself,
 * and a sealed value could only be a copy. A service without a box passes sealed values through (the scheduler
 * appending what was sealed for it) and refuses clear ones: the log never holds a credential in clear.
 */
export function sealPayload(box: SecretBox | null, path: StreamPath, type: string, payload: unknown, index: number): unknown {
  return withCredentialFields(type, payload, (fieldsType, record, where) => sealFields(box, path, fieldsType, record, index, where));
}

/**
 * The payload with the record that holds credential fields changed by `change`: the payload itself for a type with
 * SecretFields, the payload of the event it carries for one that appends an event later (NESTED_APPENDS). Any other
 * payload is returned as it is.
 */
function withCredentialFields(type: string, payload: unknown, change: (fieldsType: string, record: Record<string, unknown>, where: string) => Record<string, unknown>): unknown {
  const record = asRecord(payload);
  if (record === null) return payload;
  const nested = NESTED_APPENDS[type];
  if (nested !== undefined) {
    const inner = asRecord(nested(record));
    if (inner === null || typeof inner.type !== "string" || SecretFields[inner.type] === undefined) return payload;
    return { ...record, append: { ...inner, payload: change(inner.type, asRecord(inner.payload) ?? {}, "payload.append.payload") } };
  }
  return SecretFields[type] === undefined ? payload : change(type, record, "payload");
}

/**
 * `value` with each string at `path` (SecretFields' syntax) replaced by `change(string or other leaf, concrete path)`;
 * a leaf that is absent is left alone. Records along the way are copied, never changed in place.
 */
function mapCredentialPath(value: unknown, path: readonly string[], concrete: string, change: (leaf: unknown, field: string) => unknown): unknown {
  const [segment, ...rest] = path;
  if (segment === undefined) return value === undefined || value === null ? value : change(value, concrete);
  const join = (key: string): string => (concrete === "" ? key : `${concrete}.${key}`);
  if (value === undefined || value === null) return value;
  // Where a credential's container should be, anything else may be the credential itself: sealed whole, or refused.
  if (segment === "*") {
    if (Array.isArray(value)) return value.map((item, i) => mapCredentialPath(item, rest, join(String(i)), change));
    const record = asRecord(value);
    if (record === null) return change(value, concrete);
    return Object.fromEntries(Object.entries(record).map(([key, item]) => [key, mapCredentialPath(item, rest, join(key), change)]));
  }
  const record = asRecord(value);
  if (record === null) return change(value, concrete);
  if (!(segment in record)) return value;
  const changed = mapCredentialPath(record[segment], rest, join(segment), change);
  return changed === record[segment] ? record : { ...record, [segment]: changed };
}

/** The record with every credential field of `type` changed by `change` (which is given each concrete field path). */
function mapCredentialFields(type: string, record: Record<string, unknown>, change: (leaf: unknown, field: string) => unknown): Record<string, unknown> {
  let result: unknown = record;
  for (const field of SecretFields[type] ?? []) result = mapCredentialPath(result, field.split("."), "", change);
  return asRecord(result) ?? record;
}

function sealFields(box: SecretBox | null, path: StreamPath, type: string, record: Record<string, unknown>, index: number, where: string): Record<string, unknown> {
  return mapCredentialFields(type, record, (value, field) => {
    const name = `${where}.${field}`;
    if (typeof value !== "string") {
      // Anything else could hold a credential in a shape that is not sealed: refused, never stored in clear.
      throw new AgentmeshError("INVALID_EVENT", `Event ${index}: ${name} must be a string`, { details: { index, field: name } });
    }
    if (isSealed(value)) {
      if (box === null) return value;
      throw new AgentmeshError("INVALID_EVENT", `Event ${index}: ${name} must be the secret itself, not a sealed value`, { details: { index, field: name } });
    }
    if (box === null) throw new AgentmeshError("SECRETS_UNAVAILABLE", `Event ${index} (${type}) carries a credential, and this service has no SECRETS_KEYS to seal it with`, { details: { index } });
    return box.seal(value, path, type, field);
  });
}

/**
 * A credential as stored, in clear for the service that uses it. A value that is not sealed was stored before
 * sealing existed (or by a writer that bypassed the gateway) and is used as it is.
 */
export function openSecret(box: SecretBox | null, stored: string, path: StreamPath, type: string, field: string): string {
  if (!isSealed(stored)) return stored;
  if (box === null) throw new AgentmeshError("SECRETS_UNAVAILABLE", `The ${type} secret of ${path} is sealed, and this service has no SECRETS_KEYS to open it`);
  try {
    return box.open(stored, path, type, field);
  } catch (err) {
    throw new AgentmeshError("SECRETS_UNAVAILABLE", `The ${type} secret of ${path} does not open with this service's SECRETS_KEYS: ${err instanceof Error ? err.message : "unknown"}`, { cause: err });
  }
}

/**
 * A payload as a fork stores it: each sealed credential opened for the source stream and sealed again for the
 * fork, since a sealed value is bound to its stream. Without a box, or for a value that does not open, the value
 * is copied as it is and stays unusable in the fork: a fork never holds a credential in clear.
 */
export function resealPayload(box: SecretBox | null, from: StreamPath, to: StreamPath, type: string, payload: unknown): unknown {
  if (box === null) return payload;
  return withCredentialFields(type, payload, (fieldsType, record) => resealFields(box, from, to, fieldsType, record));
}

function resealFields(box: SecretBox, from: StreamPath, to: StreamPath, type: string, record: Record<string, unknown>): Record<string, unknown> {
  return mapCredentialFields(type, record, (value, field) => {
    if (typeof value !== "string" || !isSealed(value)) return value;
    try {
      return box.seal(box.open(value, from, type, field), to, type, field);
    } catch {
      // Sealed under a key this service lacks, or not for this stream: left as it is, and so unusable in the fork.
      return value;
    }
  });
}
