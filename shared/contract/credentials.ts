import { z } from "zod";
import { AgentEventTypes, SubscriptionEventTypes, SystemEventTypes } from "./wire.js";

/**
 * Which fields of which events are credentials, and how a sealed one looks: part of the contract, since every
 * reader sees these fields sealed (shared/log/secrets.ts seals and opens them; docs/SECURITY.md says why).
 */

/**
 * Event types whose payload carries credentials, and the fields that hold them: dotted paths to strings, where `*`
 * stands for every element of an array or every key of an object. A sealed value is bound to its concrete path
 * (`servers.0.headers.Authorization`).
 */
export const SecretFields: Readonly<Record<string, readonly string[]>> = {
  [SystemEventTypes.inboundConfigured]: ["secret"],
  // A receiver's URL may carry a credential of its own (user:password@, a Slack-style secret path).
  [SubscriptionEventTypes.configured]: ["secret", "url"],
  // Every header value sent to an MCP server (an API key, a bearer token); the URL may carry one too.
  [AgentEventTypes.mcpServersConfigured]: ["servers.*.headers.*", "servers.*.url"],
};

/** Sealed form: `sealed:v1:<key id>:<base64url of iv(12) | ciphertext | tag(16)>`. */
export const SEALED_PREFIX = "sealed:v1:";

export function isSealed(value: string): boolean {
  return value.startsWith(SEALED_PREFIX);
}

/** A credential field of a stored payload: the Standard Webhooks secret as sent, or sealed by the gateway. */
export const StoredWebhookSecretSchema = z.string().refine((value) => value.startsWith("whsec_") || isSealed(value), "a Standard Webhooks secret (whsec_...)");

/** A value the gateway sealed (its shape only: opening it checks the rest). */
export const SealedValueSchema = z.string().refine(isSealed, "a sealed value");
