import { createHash, createHmac, createPrivateKey, createPublicKey, hkdfSync, randomBytes, sign, timingSafeEqual, type KeyObject } from "node:crypto";
import { z } from "zod";
import { AgentmeshError } from "../../../shared/contract/errors.js";
import type { SecretKeys } from "../../../shared/log/secrets.js";

/**
 * The keys subscriptions sign with, derived from SECRETS_KEYS so that every
 * gateway replica holds the same ones without a private key being stored
 * anywhere: the first key signs, and every key's public half is in the JWKS
 * (`__ds/jwks.json`), so a rotation keeps old signatures verifiable.
 * Webhooks are signed with Ed25519 over `${t}.${body}` (header
 * `webhook-signature: t=..,kid=..,ed25519=..`); wake tokens are HMAC-SHA256.
 */

/** RFC 8410 PKCS#8 wrapping of a raw 32-byte Ed25519 seed. */
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SIGNING_INFO = "agentmesh-ds-webhook-ed25519";
const TOKEN_INFO = "agentmesh-ds-callback-token";
const TOKEN_LIFETIME_S = 3600;

export interface PublicJwk {
  kty: "OKP";
  crv: "Ed25519";
  x: string;
  kid: string;
  use: "sig";
  alg: "EdDSA";
}

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  jwk: PublicJwk;
}

function derive(key: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), info, 32));
}

function signingKeyOf(secret: Buffer): SigningKey {
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, derive(secret, SIGNING_INFO)]), format: "der", type: "pkcs8" });
  const exported = createPublicKey(privateKey).export({ format: "jwk" });
  const x = String(exported.x);
  // RFC 7638 thumbprint: the required members in lexicographic order.
  const kid = `ds_${createHash("sha256").update(JSON.stringify({ crv: "Ed25519", kty: "OKP", x })).digest("base64url")}`;
  return { kid, privateKey, jwk: { kty: "OKP", crv: "Ed25519", x, kid, use: "sig", alg: "EdDSA" } };
}

const TokenClaimsSchema = z.object({ sub: z.string(), epoch: z.number().int(), exp: z.number(), jti: z.string() });
export type TokenClaims = z.infer<typeof TokenClaimsSchema>;

export class SubscriptionKeys {
  private readonly signing: SigningKey;
  private readonly all: SigningKey[];
  private readonly tokenKey: Buffer;

  constructor(keys: SecretKeys) {
    const first = keys[0];
    if (first === undefined) throw new Error("SECRETS_KEYS holds no key");
    this.all = keys.map((k) => signingKeyOf(k.key));
    this.signing = this.all[0] ?? signingKeyOf(first.key);
    this.tokenKey = derive(first.key, TOKEN_INFO);
  }

  get kid(): string {
    return this.signing.kid;
  }

  jwks(): { keys: PublicJwk[] } {
    return { keys: this.all.map((k) => k.jwk) };
  }

  /** The `webhook-signature` header for a body sent now. */
  signWebhook(rawBody: string, nowMs = Date.now()): string {
    const t = Math.floor(nowMs / 1000);
    const signature = sign(null, Buffer.from(`${t}.${rawBody}`), this.signing.privateKey).toString("base64url");
    return `t=${t},kid=${this.signing.kid},ed25519=${signature}`;
  }

  /** A wake token: the bearer of a callback, ack or release, bound to the subscription and the wake's generation. */
  mintToken(subscriptionId: string, generation: number, nowMs = Date.now()): string {
    const claims: TokenClaims = { sub: `subscription:${subscriptionId}`, epoch: generation, exp: Math.floor(nowMs / 1000) + TOKEN_LIFETIME_S, jti: randomBytes(12).toString("hex") };
    const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
    return `${payload}.${this.mac(payload)}`;
  }

  /** The claims of a token for this subscription: 401 TOKEN_INVALID or TOKEN_EXPIRED otherwise. Fencing is the caller's. */
  verifyToken(token: string | null, subscriptionId: string, nowMs = Date.now()): TokenClaims {
    const [payload, mac, extra] = (token ?? "").split(".");
    if (payload === undefined || mac === undefined || extra !== undefined || payload === "") throw new AgentmeshError("TOKEN_INVALID");
    const expected = Buffer.from(this.mac(payload));
    const given = Buffer.from(mac);
    if (expected.byteLength !== given.byteLength || !timingSafeEqual(expected, given)) throw new AgentmeshError("TOKEN_INVALID");
    let claims: TokenClaims;
    try {
      claims = TokenClaimsSchema.parse(JSON.parse(Buffer.from(payload, "base64url").toString("utf8")));
    } catch (err) {
      throw new AgentmeshError("TOKEN_INVALID", undefined, { cause: err });
    }
    if (claims.sub !== `subscription:${subscriptionId}`) throw new AgentmeshError("TOKEN_INVALID", "The token is for another subscription");
    if (claims.exp * 1000 <= nowMs) throw new AgentmeshError("TOKEN_EXPIRED");
    return claims;
  }

  private mac(payload: string): string {
    return createHmac("sha256", this.tokenKey).update(payload).digest("base64url");
  }
}
