/**
 * `npm run bench` part three: the costs of running the mesh, measured side by side
 * on one machine with every service as its own process:
 *   - scheduler firing delay with 10,000 schedules pending;
 *   - webhook deliveries per second to a local receiver (one subscription, and ten);
 *   - the cost of access control: single appends with AUTH=jwt / with AUTH=off.
 * Every sample is kept (warm-up runs are separate and untimed), only 2xx answers count as appends, and only
 * distinct webhook ids as deliveries. Results: stdout and .data/bench-operations.json.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import autocannon from "autocannon";
import type { EventSourceMessage } from "eventsource-parser";
import { SignJWT } from "jose";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import { REPO_ROOT, startGatewayProcess, stopChild, type GatewayProcess } from "./support/gateway-process.js";
import { keepAliveAgent, postJson } from "./support/http.js";
import { print, progress } from "./support/log.js";
import { until } from "./support/until.js";
import { openSseStream } from "./support/sse-client.js";
import { summarise, type LatencySummary } from "./support/stats.js";

interface Envelope {
  offset: number;
  type: string;
  createdAt: string;
  payload: unknown;
  metadata?: { scheduledFor?: string };
  source?: { causationOffset: number };
}

const SECRET = "bench-secret-bench-secret-bench-secret-0123";
const children: ChildProcess[] = [];

function startService(entry: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, entry)], { cwd: REPO_ROOT, env: { ...process.env, LOG_LEVEL: "error", ...env }, stdio: "ignore" });
  children.push(child);
  return child;
}


/** Scheduler: 10,000 far schedules pending, then 200 due soon; delay = stored time - due time. */
async function schedulerDelay(gateway: GatewayProcess, natsUrl: string): Promise<LatencySummary & { pending: number }> {
  startService("processors/scheduler/main.ts", { NATS_URL: natsUrl });
  const agent = keepAliveAgent(8);
  const far = new Date(Date.now() + 86_400_000).toISOString();
  for (let s = 0; s < 10; s++) {
    const batch = Array.from({ length: 1000 }, (_, i) => ({ type: "schedule/added", payload: { slug: `far-${i}`, append: { type: "far" }, schedule: { kind: "at", at: far } } }));
    await postJson(agent, `${gateway.url}/streams/bench/schedules-${s}`, JSON.stringify(batch));
  }
  progress("10,000 schedules appended; letting the scheduler index them");
  await sleep(15_000);
  const path = "/bench/soon";
  const delays: number[] = [];
  const stream = await openSseStream(`${gateway.url}/streams${path}?live=sse`, (message: EventSourceMessage) => {
    const event = JSON.parse(message.data) as Envelope;
    if (event.type === "soon" && event.metadata?.scheduledFor !== undefined) delays.push(Date.parse(event.createdAt) - Date.parse(event.metadata.scheduledFor));
  });
  const soon = Array.from({ length: 200 }, (_, i) => ({ type: "schedule/added", payload: { slug: `soon-${i}`, append: { type: "soon" }, schedule: { kind: "in", seconds: 2 + (i % 20) / 10 } } }));
  for (let i = 0; i < soon.length; i += 20) await postJson(agent, `${gateway.url}/streams${path}`, JSON.stringify(soon.slice(i, i + 20)));
  await until(() => delays.length >= 200, 30_000, "scheduled firings");
  stream.close();
  return { ...summarise(delays), pending: 10_000 };
}

/** Webhook pusher -> a local receiver: deliveries per second for one subscription and for ten. */
async function webhookThroughput(gateway: GatewayProcess, natsUrl: string): Promise<{ oneSubscription: number; tenSubscriptions: number; duplicates: number[] }> {
  // Distinct deliveries, by webhook id: a redelivery of one already received is not throughput.
  let delivered = new Set<string>();
  let requests = 0;
  const receiver = createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      requests += 1;
      delivered.add(String(request.headers["webhook-id"]));
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const address = receiver.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}/hook`;
  startService("processors/webhook-pusher/main.ts", { NATS_URL: natsUrl, WEBHOOK_ALLOWED_NETWORKS: "loopback" });
  await sleep(3000);
  const agent = keepAliveAgent(8);
  const duplicates: number[] = [];
  const run = async (subscriptions: number, events: number): Promise<number> => {
    delivered = new Set();
    requests = 0;
    const paths = Array.from({ length: subscriptions }, (_, i) => `/bench/hooks-${subscriptions}-${i}`);
    for (const path of paths) await postJson(agent, `${gateway.url}/streams${path}`, JSON.stringify({ type: "subscription/configured", payload: { slug: "bench", url } }));
    await sleep(1000);
    const started = performance.now();
    for (const path of paths) {
      for (let i = 0; i < events / subscriptions; i += 100) await postJson(agent, `${gateway.url}/streams${path}`, JSON.stringify(Array.from({ length: 100 }, () => ({ type: "agent/said", payload: { text: "x".repeat(180) } }))));
    }
    await until(() => delivered.size >= events, 120_000, `${events} deliveries`);
    const rate = Math.round(events / ((performance.now() - started) / 1000));
    duplicates.push(requests - delivered.size);
    return rate;
  };
  const oneSubscription = await run(1, 2000);
  const tenSubscriptions = await run(10, 5000);
  receiver.close();
  return { oneSubscription, tenSubscriptions, duplicates };
}

interface AppendRate {
  /** 2xx answers per second of the timed run: anything else is not an append. */
  perSec: number;
  non2xx: number;
  errors: number;
}

async function appendRate(url: string, path: string, headers: Record<string, string>): Promise<AppendRate> {
  const options = { url: `${url}/streams${path}`, method: "POST" as const, headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ type: "bench", payload: { data: "x".repeat(180) } }), connections: 32, timeout: 30 };
  await autocannon({ ...options, duration: 1 });
  const result = await autocannon({ ...options, duration: 6 });
  return { perSec: Math.round(result["2xx"] / result.duration), non2xx: result.non2xx, errors: result.errors + result.timeouts };
}

/**
 * One side of the auth comparison, measured the same way as the other: a gateway process started fresh for it
 * (nothing else running but nats-server), its own stream, the same load, then stopped.
 */
async function authSide(natsUrl: string, auth: "off" | "jwt", round: number): Promise<AppendRate> {
  const env: Record<string, string> = auth === "off" ? { AUTH: "off" } : { AUTH: "jwt", AUTH_JWT_SECRET: SECRET };
  const gateway = await startGatewayProcess({ natsUrl, env, onLog: () => undefined });
  try {
    const headers: Record<string, string> = {};
    if (auth === "jwt") {
      const token = await new SignJWT({ streams: [{ path: "/bench/**", rights: ["append"] }] }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("1h").sign(new TextEncoder().encode(SECRET));
      headers.authorization = `Bearer ${token}`;
    }
    return await appendRate(gateway.url, `/bench/auth-${auth}-${round}`, headers);
  } finally {
    await gateway.stop();
  }
}

/** Both sides twice, in the order off, jwt, jwt, off, so a drift of the machine's speed during the scenario weighs on both alike. */
async function authCost(natsUrl: string): Promise<{ off: AppendRate[]; jwt: AppendRate[] }> {
  const sides = { off: [] as AppendRate[], jwt: [] as AppendRate[] };
  for (const [round, auth] of (["off", "jwt", "jwt", "off"] as const).entries()) sides[auth].push(await authSide(natsUrl, auth, round));
  return sides;
}

async function main(): Promise<void> {
  const nats = await startNatsServer();
  const gateways: GatewayProcess[] = [];
  try {
    const gateway = await startGatewayProcess({ natsUrl: nats.url, env: { AUTH: "off" }, onLog: () => undefined });
    gateways.push(gateway);
    progress("scheduler firing delay with 10,000 pending");
    const schedule = await schedulerDelay(gateway, nats.url);
    progress("webhook deliveries");
    const webhooks = await webhookThroughput(gateway, nats.url);
    // Nothing but nats-server may run during the auth comparison: the processors and this gateway are stopped (and waited for) first.
    await Promise.all(children.map((child) => stopChild(child)));
    await gateway.stop();
    progress("auth cost: appends without and with bearer tokens, each on a fresh gateway, off/jwt/jwt/off");
    const auth = await authCost(nats.url);
    const perSec = (rates: AppendRate[]): number => Math.round(rates.reduce((sum, r) => sum + r.perSec, 0) / rates.length);
    const off = perSec(auth.off);
    const on = perSec(auth.jwt);
    const refused = [...auth.off, ...auth.jwt].reduce((sum, r) => sum + r.non2xx + r.errors, 0);
    const results = { schedule, webhooks, auth: { off: auth.off, jwt: auth.jwt, offPerSec: off, jwtPerSec: on, ratio: on / off, notAppended: refused } };
    mkdirSync(join(REPO_ROOT, ".data"), { recursive: true });
    writeFileSync(join(REPO_ROOT, ".data", "bench-operations.json"), JSON.stringify(results, null, 2));
    const ms = (v: number) => `${v.toFixed(2)} ms`;
    print(`
figure                                              | value
--------------------------------------------------- | ------------------------------
scheduler delay, 10,000 pending, p50 / p99 / max    | ${ms(schedule.p50)} / ${ms(schedule.p99)} / ${ms(schedule.max)}
webhook deliveries/s, 1 subscription (in order)     | ${webhooks.oneSubscription}
webhook deliveries/s, 10 subscriptions              | ${webhooks.tenSubscriptions}
webhook redeliveries of one already received        | ${webhooks.duplicates.join(" / ")}
single appends/s, AUTH=off / AUTH=jwt (ratio)       | ${off} / ${on} (${Math.round((on / off) * 100)}%)
  each run (off, jwt)                               | ${auth.off.map((r) => r.perSec).join(", ")} / ${auth.jwt.map((r) => r.perSec).join(", ")}
  answers other than 2xx, errors                    | ${refused}
`);
  } finally {
    for (const child of children) child.kill("SIGKILL");
    for (const gateway of gateways) await gateway.stop();
    await nats.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench (operations) failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  for (const child of children) child.kill("SIGKILL");
  process.exit(1);
});
