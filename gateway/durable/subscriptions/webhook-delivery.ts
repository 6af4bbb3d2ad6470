import type { Agent} from "undici";
import { request } from "undici";
import { z } from "zod";
import type { AddressGuard } from "../../../shared/outbound/address-guard.js";

/**
 * POSTs a signed wake to a subscription's webhook, through the address guard
 * at connect time (so DNS cannot turn an allowed host into a private address
 * after the check at creation), with a timeout and without following redirects.
 */

export type WakeDeliveryOutcome = { kind: "delivered"; done: boolean } | { kind: "failed"; error: string };

const ReceiverReplySchema = z.object({ done: z.boolean().optional() }).loose();

export class WakeSender {
  private readonly agent: Agent;

  constructor(
    private readonly guard: AddressGuard,
    private readonly timeoutMs: number,
  ) {
    this.agent = guard.dispatcher(timeoutMs);
  }

  async send(url: string, rawBody: string, signature: string): Promise<WakeDeliveryOutcome> {
    const refusal = this.guard.urlRefusal(url);
    if (refusal !== null) return { kind: "failed", error: `refused: ${refusal}` };
    try {
      const response = await request(url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "agentmesh-durable-subscriptions", "webhook-signature": signature },
        body: rawBody,
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const status = response.statusCode;
      if (status < 200 || status >= 300) {
        await response.body.dump();
        return { kind: "failed", error: `HTTP ${status}` };
      }
      // A synchronous `{done: true}` acks the wake; any other 2xx body (or none) leaves it to the callback.
      const text = await response.body.text();
      let done = false;
      try {
        done = ReceiverReplySchema.safeParse(JSON.parse(text)).data?.done === true;
      } catch {
        done = false;
      }
      return { kind: "delivered", done };
    } catch (err) {
      return { kind: "failed", error: err instanceof Error ? err.message : String(err) };
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
