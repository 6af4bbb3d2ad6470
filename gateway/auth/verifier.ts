import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { AgentmeshError } from "../../shared/errors.js";
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
}

/** Verifies bearer JWTs (jose) and reads their `streams` grants. */
export class TokenVerifier {
  private readonly key: Uint8Array | JWTVerifyGetKey;

  constructor(private readonly options: VerifierOptions) {
    if (options.secret !== undefined) this.key = new TextEncoder().encode(options.secret);
    else if (options.jwksUrl !== undefined) this.key = createRemoteJWKSet(new URL(options.jwksUrl));
    else throw new Error("a token verifier needs a secret or a JWKS URL");
  }

  async verify(token: string): Promise<Principal> {
    try {
      const verifyOptions = {
        ...(this.options.secret !== undefined ? { algorithms: ["HS256"] } : {}),
        ...(this.options.issuer === undefined ? {} : { issuer: this.options.issuer }),
        ...(this.options.audience === undefined ? {} : { audience: this.options.audience }),
      };
      const { payload } =
        this.key instanceof Uint8Array ? await jwtVerify(token, this.key, verifyOptions) : await jwtVerify(token, this.key, verifyOptions);
      const grants = StreamsClaimSchema.safeParse(payload.streams ?? []);
      if (!grants.success) throw new AgentmeshError("UNAUTHENTICATED", `The token's streams claim is invalid: ${grants.error.issues[0]?.message ?? ""}`);
      return { subject: payload.sub ?? "anonymous", grants: grants.data };
    } catch (err) {
      if (err instanceof AgentmeshError) throw err;
      const why = err instanceof joseErrors.JWTExpired ? "the token has expired" : err instanceof joseErrors.JOSEError ? err.code : "the token could not be verified";
      throw new AgentmeshError("UNAUTHENTICATED", `Invalid bearer token: ${why}`, { cause: err });
    }
  }
}
