import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { decodeJwt } from "jose";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startGatewayProcess } from "../bench/support/gateway-process.js";
import { request, startGateway, TEST_SECRETS_KEYS, uniquePath, type TestGateway } from "../support/gateway.js";
import { freePort } from "../support/ports.js";
import { readAll } from "../support/processors.js";
import { bearer, errorCode, JWT_SECRET, mintToken, readAllAs } from "../support/security.js";
import { openSse } from "../support/sse.js";

/** Bearer tokens: when they are required, what they may live, what they identify, and where they never go. */

const repo = join(import.meta.dirname, "../..");
const mintScript = join(repo, "gateway/auth/mint-token.ts");
let open: TestGateway;
const root = uniquePath("sec-auth");

beforeAll(async () => {
  // AUTH=off, on the same NATS: reads back what the gateways under test stored, or did not.
  open = await startGateway();
});
afterAll(async () => {
  await open.close();
});

/** `npm run token` as a person runs it. */
async function npmRunToken(args: string[], secret: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", mintScript, ...args], { env: { ...process.env, AUTH_JWT_SECRET: secret } });
  return stdout.trim();
}

/** `npm start` (deploy/local/start.ts) with exactly this auth configuration: AUTH and SECRETS_KEYS unset. */
function npmStart(env: Record<string, string>) {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ["AUTH", "AUTH_JWT_SECRET", "AUTH_JWKS_URL", "SECRETS_KEYS"]) base[name] = undefined;
  const child = spawn(process.execPath, ["--import", "tsx", "deploy/local/start.ts"], { cwd: repo, env: { ...base, NATS_URL: "", LOG_FORMAT: "json", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => { resolve(code); }));
  return { child, exited, output: () => output };
}

async function waitForReady(url: string, output: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fetch(url).then((r) => r.status === 200, () => false))) {
    if (Date.now() > deadline) throw new Error(`${url} not ready within ${timeoutMs} ms:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("bearer tokens", () => {
  it("npm start with AUTH_JWT_SECRET set requires tokens, and keeps one sealing key per data directory (0600) across restarts", async () => {
    const jwtSecret = "npm-start-secret-of-exactly-40-chars-!!!";
    expect(jwtSecret).toHaveLength(40);
    const dataDir = mkdtempSync(join(tmpdir(), "agentmesh-sec-start-"));
    const path = uniquePath("sec-start");
    const hookSecret = `whsec_${Buffer.from("npm-start-inbound-secret").toString("base64")}`;
    const keysFile = join(dataDir, "secrets-keys");
    const start = async () => {
      const gatewayPort = await freePort();
      const mesh = npmStart({ GATEWAY_PORT: String(gatewayPort), LOCAL_NATS_PORT: String(await freePort()), AGENTMESH_DATA_DIR: dataDir, AUTH_JWT_SECRET: jwtSecret });
      await waitForReady(`http://127.0.0.1:${gatewayPort}/readyz`, mesh.output);
      return { ...mesh, base: `http://127.0.0.1:${gatewayPort}` };
    };
    const stop = async (mesh: Awaited<ReturnType<typeof start>>) => {
      mesh.child.kill("SIGINT");
      expect(await mesh.exited).toBe(0);
    };
    let first: Awaited<ReturnType<typeof start>> | undefined;
    let second: Awaited<ReturnType<typeof start>> | undefined;
    try {
      const minted = await npmRunToken(["--path", `${path}/**`, "--rights", "read,append,admin", "--expires", "10m"], jwtSecret);
      first = await start();
      const anonymous = await request(`${first.base}/streams${path}/x`, { body: { type: "note" } });
      expect(anonymous.status).toBe(401);
      expect(errorCode(anonymous)).toBe("UNAUTHENTICATED");
      expect((await request(`${first.base}/streams${path}/x`, { body: { type: "note" }, headers: bearer(minted) })).status).toBe(201);
      expect((await request(`${first.base}/streams${path}/hooked`, { body: { type: "webhook/inbound-configured", payload: { secret: hookSecret } }, headers: bearer(minted) })).status).toBe(201);
      // Made by npm start, readable by its owner only.
      expect(statSync(keysFile).mode & 0o777).toBe(0o600);
      const key = readFileSync(keysFile, "utf8");
      expect(key).toMatch(/^local:[A-Za-z0-9+/]{43}=\n$/);
      await stop(first);
      first = undefined;

      second = await start();
      expect(readFileSync(keysFile, "utf8")).toBe(key);
      // The inbound secret sealed by the first run opens in the second: the same key was used.
      const body = '{"after":"restart"}';
      const now = new Date();
      const signed = { "content-type": "application/json", "webhook-id": "msg_restart", "webhook-timestamp": String(Math.floor(now.getTime() / 1000)), "webhook-signature": new Webhook(hookSecret).sign("msg_restart", now, body) };
      const hook = await fetch(`${second.base}/hooks${path}/hooked`, { method: "POST", headers: signed, body });
      expect(hook.status).toBe(201);
      // The refused append stored nothing.
      expect((await readAllAs(second.base, `${path}/x`, minted)).map((e) => e.type)).toEqual(["note"]);
      await stop(second);
      second = undefined;
    } finally {
      first?.child.kill("SIGKILL");
      second?.child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 45_000);

  it("refuses tokens without exp, issued in the future or living longer than AUTH_MAX_TOKEN_LIFETIME_S, and npm run token always sets exp", async () => {
    const gw = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET });
    const strict = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET, AUTH_MAX_TOKEN_LIFETIME_S: "60" });
    try {
      const path = `${root}/lifetimes`;
      const grants = [{ path: `${root}/**`, rights: ["append" as const] }];
      const append = (url: string, token: string, type: string) => request(`${url}/streams${path}`, { body: { type }, headers: bearer(token) });
      const refused = [
        ["no-exp", await mintToken(grants, { expiresInS: null })],
        ["no-exp-no-iat", await mintToken(grants, { expiresInS: null, issuedAtS: null })],
        ["future-iat", await mintToken(grants, { issuedAtS: 600, expiresInS: 900 })],
        ["48h", await mintToken(grants, { expiresInS: 48 * 3600 })],
        ["48h-no-iat", await mintToken(grants, { expiresInS: 48 * 3600, issuedAtS: null })],
      ] as const;
      for (const [type, token] of refused) {
        const reply = await append(gw.url, token, type);
        expect([type, reply.status, errorCode(reply)]).toEqual([type, 401, "UNAUTHENTICATED"]);
      }
      const hour = await mintToken(grants, { expiresInS: 3600 });
      expect((await append(gw.url, hour, "1h")).status).toBe(201);
      const strictRefusal = await append(strict.url, hour, "1h-on-strict");
      expect([strictRefusal.status, errorCode(strictRefusal)]).toEqual([401, "UNAUTHENTICATED"]);
      expect((await append(strict.url, await mintToken(grants, { expiresInS: 50 }), "50s-on-strict")).status).toBe(201);
      // Only the accepted appends were stored.
      expect((await readAll(open.url, path)).map((e) => e.type)).toEqual(["1h", "50s-on-strict"]);

      for (const args of [[], ["--expires", "10m"]]) {
        const minted = decodeJwt(await npmRunToken(["--path", `${root}/**`, "--rights", "read", ...args], JWT_SECRET));
        expect(minted.exp).toBeTypeOf("number");
        expect(minted.iat).toBeTypeOf("number");
        expect((minted.exp ?? 0) - (minted.iat ?? 0)).toBe(args.length === 0 ? 3600 : 600);
      }
    } finally {
      await Promise.all([gw.close(), strict.close()]);
    }
  }, 45_000);

  it("keys rate and connection limits on the verified token subject, not on the Authorization header as sent", async () => {
    const path = `${root}/limited`;
    const limited = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET, RATE_LIMIT_PER_SECOND: "5" });
    const sse = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET, SSE_MAX_CONNECTIONS_PER_CLIENT: "1" });
    const window = () => new Promise((resolve) => setTimeout(resolve, 1_100));
    try {
      const append = (authorization: string, type = "note") => request(`${limited.url}/streams${path}`, { body: { type }, headers: { authorization } });
      // Junk tokens, spelled ten ways, are one unauthenticated client: one budget of 5.
      const junk = ["Bearer junk1", "bearer junk2", "Bearer   junk3", "BEARER junk4", "Bearer\tjunk5", "Bearer junk6 ", "bearer  junk7", "Bearer junk8", "Bearer x.y.z", "Bearer a.b.c"];
      const junkReplies = await Promise.all(junk.map((authorization) => append(authorization, "junk")));
      const junkStatuses = junkReplies.map((r) => r.status).sort();
      expect(junkStatuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
      const limitedReply = junkReplies.find((r) => r.status === 429);
      expect(limitedReply === undefined ? undefined : errorCode(limitedReply)).toBe("RATE_LIMITED");
      expect(limitedReply?.headers.get("retry-after")).toBeTruthy();

      await window();
      // Two verified subjects: each its own 5.
      const alice = await mintToken([{ path: `${root}/**`, rights: ["append"] }], { subject: "alice" });
      const bob = await mintToken([{ path: `${root}/**`, rights: ["append"] }], { subject: "bob" });
      const both = await Promise.all([...Array.from({ length: 5 }, () => append(`Bearer ${alice}`, "alice")), ...Array.from({ length: 5 }, () => append(`Bearer ${bob}`, "bob"))]);
      expect(both.map((r) => r.status)).toEqual(Array.from({ length: 10 }, () => 201));

      await window();
      // One subject however its header is spelled: `bearer`, `Bearer` and extra spaces share alice's 5.
      const spellings = [`Bearer ${alice}`, `bearer ${alice}`, `Bearer   ${alice}`, `BEARER ${alice}`, `bearer\t${alice}`, `Bearer ${alice}`];
      const spelled = await Promise.all(spellings.map((authorization) => append(authorization, "alice-spelled")));
      expect(spelled.map((r) => r.status).sort()).toEqual([201, 201, 201, 201, 201, 429]);
      const stored = (await readAll(open.url, path)).map((e) => e.type);
      expect(stored.filter((t) => t === "junk")).toEqual([]);
      expect(stored.filter((t) => t === "alice-spelled")).toHaveLength(5);
      expect(stored).toHaveLength(15);

      // Live connections: one per subject, whether the token comes as `Bearer`, `bearer` or access_token.
      const reader = await mintToken([{ path: `${root}/**`, rights: ["read"] }], { subject: "carol" });
      const url = `${sse.url}/streams${path}?live=sse`;
      const first = await openSse(url, { authorization: `Bearer ${reader}` });
      expect(first.status).toBe(200);
      for (const second of [() => request(url, { headers: { authorization: `bearer ${reader}` } }), () => request(`${url}&access_token=${reader}`), () => request(url, { headers: { authorization: `Bearer  ${reader}` } })]) {
        const refused = await second();
        expect([refused.status, errorCode(refused)]).toEqual([429, "TOO_MANY_CONNECTIONS"]);
      }
      // Another subject still gets its own connection.
      const other = await openSse(url, bearer(await mintToken([{ path: `${root}/**`, rights: ["read"] }], { subject: "dave" })));
      expect(other.status).toBe(200);
      first.abort();
      other.abort();
      expect(await readAll(open.url, path)).toHaveLength(15);
    } finally {
      await Promise.all([limited.close(), sse.close()]);
    }
  });

  /** A gateway run as a process with auth on, and every line it logs. */
  async function loggedGateway(): Promise<{ gw: Awaited<ReturnType<typeof startGatewayProcess>>; lines: string[] }> {
    const lines: string[] = [];
    const gw = await startGatewayProcess({
      natsUrl: inject("natsUrl"),
      env: { AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET, LOG_LEVEL: "info", SECRETS_KEYS: TEST_SECRETS_KEYS },
      onLog: (line) => lines.push(line),
    });
    return { gw, lines };
  }

  it("never writes a bearer token given as access_token to the logs", async () => {
    const { gw, lines } = await loggedGateway();
    try {
      const path = `${root}/logged`;
      const writer = await mintToken([{ path: `${root}/**`, rights: ["append"] }], { subject: "writer" });
      expect((await request(`${gw.url}/streams${path}`, { body: { type: "note" }, headers: bearer(writer) })).status).toBe(201);
      const tokens = await Promise.all(["plain", "encoded", "sse"].map((subject) => mintToken([{ path: `${root}/**`, rights: ["read"] }], { subject })));
      const [plain, encoded, live] = tokens as [string, string, string];
      expect((await request(`${gw.url}/streams${path}?access_token=${plain}`)).status).toBe(200);
      expect((await request(`${gw.url}/streams${path}?limit=10&access%5Ftoken=${encoded}`)).status).toBe(200);
      const tail = await openSse(`${gw.url}/streams${path}?live=sse&access_token=${live}`);
      expect(tail.status).toBe(200);
      await tail.waitFor((messages) => messages.length === 1);
      tail.abort();
      await tail.ended;
      // A live tail that is refused is answered (and logged) like any request.
      const outsider = await mintToken([{ path: "/elsewhere/**", rights: ["read"] }], { subject: "outsider" });
      tokens.push(outsider);
      expect((await request(`${gw.url}/streams${path}?live=sse&access_token=${outsider}`)).status).toBe(403);
      // A later request's line is written after every line before it.
      expect((await request(`${gw.url}/streams${path}?marker=done`, { headers: bearer(await mintToken([{ path: `${root}/**`, rights: ["read"] }], { subject: "marker" })) })).status).toBe(200);
      await expect.poll(() => lines.some((line) => line.includes("marker=done")), { timeout: 10_000 }).toBe(true);

      for (const token of [writer, ...tokens]) {
        const leaked = lines.filter((line) => line.includes(token) || line.includes(token.split(".")[2] ?? token));
        expect(leaked).toEqual([]);
      }
      // The requests were logged, with the token's place kept: access_token, access%5Ftoken and the refused live tail.
      const requests = lines.filter((line) => line.includes('"msg":"request"')).map((line) => JSON.parse(line) as { url: string });
      expect(requests.filter((line) => line.url.includes("[redacted]")).length).toBeGreaterThanOrEqual(3);
    } finally {
      await gw.stop();
    }
  });

  // The query parser decodes any percent-encoded character of a name, so `?%61ccess_token=<token>` authenticates too.
  it("never writes a bearer token to the logs whatever percent-encoding spells access_token", async () => {
    const { gw, lines } = await loggedGateway();
    try {
      const path = `${root}/logged-encoded`;
      expect((await request(`${open.url}/streams${path}`, { body: { type: "note" } })).status).toBe(201);
      const token = await mintToken([{ path: `${root}/**`, rights: ["read"] }], { subject: "encoded-name" });
      expect((await request(`${gw.url}/streams${path}?%61ccess_token=${token}`)).status).toBe(200);
      expect((await request(`${gw.url}/streams${path}?marker=done`, { headers: bearer(token) })).status).toBe(200);
      await expect.poll(() => lines.some((line) => line.includes("marker=done")), { timeout: 10_000 }).toBe(true);
      expect(lines.filter((line) => line.includes(token.split(".")[2] ?? token))).toEqual([]);
    } finally {
      await gw.stop();
    }
  });

  it("does not show another writer's event to an append-only token through an idempotent retry", async () => {
    const gw = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET });
    try {
      const path = `${root}/idempotent`;
      const full = await mintToken([{ path: `${root}/**`, rights: ["read", "append", "admin"] }], { subject: "owner" });
      const appendOnly = await mintToken([{ path: `${root}/**`, rights: ["append"] }], { subject: "prober" });
      const original = await request(`${gw.url}/streams${path}`, { body: { type: "note", payload: { private: "x1" }, idempotencyKey: "k1" }, headers: bearer(full) });
      expect(original.status).toBe(201);
      const probe = await fetch(`${gw.url}/streams${path}`, { method: "POST", headers: { ...bearer(appendOnly), "content-type": "application/json" }, body: JSON.stringify({ type: "probe", idempotencyKey: "k1" }) });
      const text = await probe.text();
      expect(probe.status).toBe(200);
      expect(text).not.toContain("x1");
      expect(text).not.toContain("note");
      expect(text).not.toContain("private");
      // The owner still sees the original, and the probe stored nothing.
      const events = await readAllAs(gw.url, path, full);
      expect(events.map((e) => [e.type, e.payload])).toEqual([["note", { private: "x1" }]]);
    } finally {
      await gw.close();
    }
  });
});
