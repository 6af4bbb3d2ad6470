import type { Agent} from "undici";
import { request } from "undici";
import { Webhook } from "standardwebhooks";
import type { AddressGuard } from "../../shared/outbound/address-guard.js";

export type DeliveryOutcome =
  | { kind: "delivered"; status: number }
  /** 410: the receiver asks us to stop (Standard Webhooks). */
  | { kind: "gone"; status: number }
  | { kind: "failed"; status?: number; error: string; retryAfterMs?: number };

export interface DeliveryRequest {
  url: string;
  /** The exact bytes that are signed and sent. */
  body: string;
  /** Stable across retries, so receivers can dedupe (`webhook-id`). */
  id: string;
  secret?: string;
}

/** `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3). */
function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * POSTs one event, signed by the Standard Webhooks spec: `webhook-id`,
 * `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` + base64
 * HMAC-SHA256 of `id.timestamp.body`). Only a 2xx is success.
 */
export class WebhookSender {
  private readonly agent: Agent;

  constructor(
    private readonly guard: AddressGuard,
    private readonly timeoutMs: number,
  ) {
    this.agent = guard.dispatcher(timeoutMs);
  }

  async send(delivery: DeliveryRequest): Promise<DeliveryOutcome> {
    const refusal = this.guard.urlRefusal(delivery.url);
    if (refusal !== null) return { kind: "failed", error: `refused: ${refusal}` };
    const timestamp = new Date();
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": "agentmesh-webhook-pusher",
      "webhook-id": delivery.id,
      "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
    };
    if (delivery.secret !== undefined) headers["webhook-signature"] = new Webhook(delivery.secret).sign(delivery.id, timestamp, delivery.body);
    try {
      const response = await request(delivery.url, { method: "POST", headers, body: delivery.body, dispatcher: this.agent, signal: AbortSignal.timeout(this.timeoutMs) });
      await response.body.dump();
      const status = response.statusCode;
      if (status >= 200 && status < 300) return { kind: "delivered", status };
      if (status === 410) return { kind: "gone", status };
      const after = status === 429 || status === 503 ? retryAfterMs(response.headers["retry-after"]) : undefined;
      return { kind: "failed", status, error: `HTTP ${status}`, ...(after === undefined ? {} : { retryAfterMs: after }) };
    } catch (err) {
      return { kind: "failed", error: err instanceof Error ? err.message : String(err) };
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
