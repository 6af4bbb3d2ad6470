import { appendEvents } from "../../shared/log/append.js";
import { EventInputSchema, type ValidEventInput } from "../../shared/contract/envelope.js";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { lastOffset } from "../../shared/log/read.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { checkBatchSize, type Writer } from "../../shared/log/writer.js";
import type { DurableDeps } from "./protocol-context.js";
import { isJsonContentType } from "./stream-record.js";

/**
 * An append through the protocol to an agent event stream: each JSON value is
 * an event input, validated and stored as POST /streams/<path> does. Returns
 * the new tail. `values` are the body's, parsed when its content type is JSON.
 */
export async function appendToAgentStream(deps: DurableDeps, writer: Writer, path: StreamPath, contentType: string, values: readonly unknown[] | undefined): Promise<number> {
  if (!isJsonContentType(contentType) || values === undefined) throw new AgentmeshError("CONTENT_TYPE_MISMATCH", "Agent event streams take application/json events");
  // The same limit as POST /streams, before any value is validated or stored.
  checkBatchSize(writer, values.length);
  const inputs = values.map((value, index): ValidEventInput => {
    const parsed = EventInputSchema.safeParse(value);
    if (!parsed.success) throw new AgentmeshError("INVALID_EVENT", `Value ${index} is not an event {type, payload?, metadata?, idempotencyKey?}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
    return parsed.data;
  });
  const result = await appendEvents(deps.nats, path, inputs, { writer, indexes: deps.indexes, secrets: deps.secrets });
  const highest = Math.max(0, ...result.events.map((e) => e.offset));
  // A repeated idempotency key answers with the original event's offset, which may lie below the tail.
  return result.stored === result.events.length ? highest : Math.max(highest, await lastOffset(deps.nats, path));
}
