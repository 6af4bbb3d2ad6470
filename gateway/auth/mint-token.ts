/**
 * `npm run token -- --path '/agents/bot-1/**' --rights read,append [--path ... --rights ...] [--subject ci] [--expires 1h]`
 * Mints an HS256 bearer token for the gateway with AUTH_JWT_SECRET (or --secret).
 */
import { parseArgs } from "node:util";
import { decodeJwt, SignJWT } from "jose";
import { GrantSchema, StreamsClaimSchema, type Grant } from "./grants.js";

const USAGE = `usage: npm run token -- --path <pattern> --rights <read,append,admin> [--path ... --rights ...]
                        [--subject <name>] [--expires <1h|30m|24h>] [--secret <secret>]
Each --path pairs with the --rights after it. The secret defaults to AUTH_JWT_SECRET.
Tokens always expire; the gateway refuses ones that live longer than AUTH_MAX_TOKEN_LIFETIME_S (default 24 h).`;

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    path: { type: "string", multiple: true },
    rights: { type: "string", multiple: true },
    subject: { type: "string", default: "agentmesh-cli" },
    expires: { type: "string", default: "1h" },
    secret: { type: "string" },
  },
  strict: true,
});
const paths = values.path ?? [];
const rights = values.rights ?? [];
if (paths.length === 0 || paths.length !== rights.length) fail("give each --path its --rights");
const grants: Grant[] = paths.map((path, i) => {
  const grant = GrantSchema.safeParse({ path, rights: (rights[i] ?? "").split(",").map((r) => r.trim()) });
  if (!grant.success) fail(`invalid grant for ${path}: ${grant.error.issues[0]?.message ?? ""}`);
  return grant.data;
});
const secret = values.secret ?? process.env.AUTH_JWT_SECRET;
if (secret === undefined || secret.length < 32) fail("a secret of at least 32 characters is needed (AUTH_JWT_SECRET or --secret)");
const token = await new SignJWT({ streams: StreamsClaimSchema.parse(grants) })
  .setProtectedHeader({ alg: "HS256" })
  .setSubject(values.subject)
  .setIssuedAt()
  .setExpirationTime(values.expires)
  .sign(new TextEncoder().encode(secret));
const { exp, iat } = decodeJwt(token);
const maxLifetimeS = Number(process.env.AUTH_MAX_TOKEN_LIFETIME_S ?? 24 * 3600);
if (exp !== undefined && iat !== undefined && exp - iat > maxLifetimeS) {
  process.stderr.write(`warning: this token lives ${Math.round((exp - iat) / 3600)} h; a gateway with AUTH_MAX_TOKEN_LIFETIME_S=${maxLifetimeS} refuses it\n`);
}
process.stdout.write(`${token}\n`);
