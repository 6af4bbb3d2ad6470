import { createHash } from "node:crypto";
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { StreamsClaimSchema, type Grant } from "./grants.js";

export interface Principal {
  subject: string;
  grants: Grant[];
}

export interface VerifierOptions {
  /** HS256 shared secret. */
  secret?: string;
  /** Or a JWKS URL (RS256, ES256, EdDSA... as the keys say). */
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  /** Longest lifetime a token may have (`exp` minus `iat`, or minus now without `iat`), in seconds. */
  maxLifetimeSeconds: number;
}

/** Clocks differ a little between whoever mints a token and the gateway. */
const CLOCK_TOLERANCE_S = 30;

/** Verified tokens are remembered this long at most (and never past their own expiry). */
const CACHE_MS = 60_000;
const CACHE_ENTRIES = 10_000;

/**
 * Verifies bearer JWTs (jose) and reads their `streams` grants. A client
 * sends the same token on every request, so a verified token is remembered
 * until it expires (at most a minute): the signature check was a third of the
 * cost of an append.
 */
export class TokenVerifier {
  private readonly key: Uint8Array | JWTVerifyGetKey;
  private readonly verified = new Map<string, { principal: Principal; validUntil: number }>();

  constructor(private readonly options: VerifierOptions) {
    if (options.secret !== undefined) this.key = new TextEncoder().encode(options.secret);
    else if (options.jwksUrl !== undefined) this.key = createRemoteJWKSet(new URL(options.jwksUrl));
    else throw new Error("a token verifier needs a secret or a JWKS URL");
  }

  async verify(token: string): Promise<Principal> {
    const cached = this.verified.get(token);
    if (cached !== undefined && cached.validUntil > Date.now()) return cached.principal;
    const { principal, expiresAtMs } = await this.verifyNow(token);
    if (this.verified.size >= CACHE_ENTRIES) this.verified.clear();
    this.verified.set(token, { principal, validUntil: Math.min(Date.now() + CACHE_MS, expiresAtMs) });
    return principal;
  }

  private async verifyNow(token: string): Promise<{ principal: Principal; expiresAtMs: number }> {
    try {
      const verifyOptions = {
        ...(this.options.secret !== undefined ? { algorithms: ["HS256"] } : {}),
        ...(this.options.issuer === undefined ? {} : { issuer: this.options.issuer }),
        ...(this.options.audience === undefined ? {} : { audience: this.options.audience }),
        requiredClaims: ["exp"],
        clockTolerance: CLOCK_TOLERANCE_S,
      };
      const { payload } =
        this.key instanceof Uint8Array ? await jwtVerify(token, this.key, verifyOptions) : await jwtVerify(token, this.key, verifyOptions);
      const grants = StreamsClaimSchema.safeParse(payload.streams ?? []);
      if (!grants.success) throw new AgentmeshError("UNAUTHENTICATED", `The token's streams claim is invalid: ${grants.error.issues[0]?.message ?? ""}`);
      const exp = payload.exp ?? 0;
      const nowS = Date.now() / 1000;
      if (payload.iat !== undefined && payload.iat > nowS + CLOCK_TOLERANCE_S) throw new AgentmeshError("UNAUTHENTICATED", "Invalid bearer token: it was issued in the future (iat)");
      if (exp - (payload.iat ?? nowS) > this.options.maxLifetimeSeconds + CLOCK_TOLERANCE_S) {
        throw new AgentmeshError("UNAUTHENTICATED", `Invalid bearer token: it lives longer than ${this.options.maxLifetimeSeconds} s (AUTH_MAX_TOKEN_LIFETIME_S)`);
      }
      // Tokens without a subject are told apart by their hash, so limits keyed on the subject still count each.
      const subject = payload.sub ?? `token:${createHash("sha256").update(token).digest("hex").slice(0, 16)}`;
      return { principal: { subject, grants: grants.data }, expiresAtMs: exp * 1000 };
    } catch (err) {
      if (err instanceof AgentmeshError) throw err;
      const why = err instanceof joseErrors.JWTExpired ? "the token has expired" : err instanceof joseErrors.JOSEError ? err.code : "the token could not be verified";
      throw new AgentmeshError("UNAUTHENTICATED", `Invalid bearer token: ${why}`, { cause: err });
    }
  }
}
