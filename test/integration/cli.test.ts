import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { buildLlm } from "../../processors/llm/service.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { freePort } from "../support/ports.js";
import { readAll, runBuiltProcessor, uniqueName, waitFor, waitForConsumer } from "../support/processors.js";
import { JWT_SECRET, mintToken } from "../support/security.js";

/** The `agentmesh` CLI run as a person runs it: a process, against a real gateway, NATS and LLM processor. */
const BIN = join(process.cwd(), "gateway", "cli", "agentmesh.mjs");

let gw: TestGateway;
let model: ModelServer;
let llm: RunningProcessor;
const root = uniquePath("cli");

beforeAll(async () => {
  gw = await startGateway();
  model = await startModelServer();
  model.fallback = (req) => ({ chunks: ["echo", ": ", ...(req.messages.at(-1)?.content ?? "").split(" ").map((w) => `${w} `)], chunkDelayMs: 120 });
  const name = uniqueName("llm");
  const env = { LLM_BASE_URL: model.baseURL, LLM_MODEL: "cli-model", LLM_MAX_RETRIES: "1", PROCESSOR_SUBJECT_FILTER: `${eventsSubject(parseStreamPath(root))}.>`, PROCESSOR_NAME: name };
  llm = await runBuiltProcessor("llm", (deps) => Promise.resolve(buildLlm(deps, { ...process.env, ...env })), env);
  await waitForConsumer(gw.nats, name);
}, 60_000);

afterAll(async () => {
  await llm.stop();
  await model.close();
  await gw.close();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Running {
  child: ChildProcess;
  stdout: () => string;
  /** Each write the process made to stdout, with when it arrived. */
  writes: { at: number; text: string }[];
  done: Promise<Run>;
}

function start(args: string[], options: { url?: string; token?: string; stdin?: string; keepStdinOpen?: boolean } = {}): Running {
  const env: NodeJS.ProcessEnv = { ...process.env, AGENTMESH_URL: options.url ?? gw.url, NO_COLOR: "" };
  delete env.AGENTMESH_TOKEN;
  if (options.token !== undefined) env.AGENTMESH_TOKEN = options.token;
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const writes: { at: number; text: string }[] = [];
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    writes.push({ at: Date.now(), text: chunk.toString() });
  });
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  if (options.stdin !== undefined) child.stdin.write(options.stdin);
  if (options.keepStdinOpen !== true) child.stdin.end();
  const done = new Promise<Run>((resolve) => child.on("close", (code) => { resolve({ code, stdout, stderr }); }));
  return { child, stdout: () => stdout, writes, done };
}

const run = (args: string[], options: Parameters<typeof start>[1] = {}): Promise<Run> => start(args, options).done;

const append = async (path: string, body: unknown, url = gw.url): Promise<EventEnvelope> => {
  const reply = await request<EventEnvelope>(`${url}/streams${path}`, { body });
  if (reply.status !== 201) throw new Error(`append: ${reply.status} ${JSON.stringify(reply.body)}`);
  return reply.body;
};

describe("the agentmesh CLI", () => {
  it("lists streams with counts and last offsets, plain when piped and as JSON lines", async () => {
    const a = `${root}/ls/a`;
    await append(a, { type: "note", payload: {} });
    const last = await append(a, { type: "note", payload: {} });
    await append(`${root}/ls/b`, { type: "note", payload: {} });
    const plain = await run(["ls", `${root}/ls`]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).not.toContain("\u001b[");
    expect(plain.stdout.split("\n")[1]).toMatch(new RegExp(`^${a}\\s+2\\s+${last.offset}$`));
    const json = await run(["ls", `${root}/ls`, "--json"]);
    expect(json.stdout.trim().split("\n").map((line) => JSON.parse(line) as unknown)).toEqual([
      { path: a, lastOffset: last.offset, eventCount: 2, lastEventAt: last.createdAt, paused: false },
      expect.objectContaining({ path: `${root}/ls/b`, eventCount: 1 }),
    ]);
  });

  it("appends from an argument and from stdin, and prints the stored event; tail --no-follow prints what is stored and exits", async () => {
    const path = `${root}/append`;
    const first = await run(["append", path, "note/added", '{"n":1}', "--json"]);
    expect(first.code).toBe(0);
    const stored = JSON.parse(first.stdout) as EventEnvelope;
    expect(stored).toMatchObject({ streamPath: path, type: "note/added", payload: { n: 1 } });
    const second = await run(["append", path, "note/piped", "-"], { stdin: '{"n":2}' });
    expect(second.stdout).toMatch(new RegExp(`^\\s*${stored.offset + 1 > 0 ? "\\d+" : ""} \\S+ note/piped \\{"n":2\\}\\n$`));
    const tail = await run(["tail", path, "--no-follow", "--json"]);
    expect(tail.code).toBe(0);
    expect(tail.stdout.trim().split("\n").map((line) => (JSON.parse(line) as EventEnvelope).payload)).toEqual([{ n: 1 }, { n: 2 }]);
    const typed = await run(["tail", path, "--no-follow", "--json", "--type", "note/p*"]);
    expect(typed.stdout.trim().split("\n")).toHaveLength(1);
    const after = await run(["tail", path, "--no-follow", "--json", "--after", String(stored.offset)]);
    expect(after.stdout.trim().split("\n")).toHaveLength(1);
    // Options before the selector; a repeated --type; --at starts at the first event stored at or after a time.
    const both = await run(["tail", "--type", "note/added", "--type", "note/piped", path, "--no-follow", "--json"]);
    expect(both.stdout.trim().split("\n")).toHaveLength(2);
    const second_ = JSON.parse(after.stdout) as EventEnvelope;
    const at = await run(["tail", path, "--no-follow", "--json", "--at", second_.createdAt]);
    expect((JSON.parse(at.stdout.trim().split("\n")[0] ?? "null") as EventEnvelope).createdAt >= stored.createdAt).toBe(true);
    expect(at.stdout.trim().split("\n").map((line) => (JSON.parse(line) as EventEnvelope).offset)).toContain(second_.offset);
  });

  it("follows a stream live, and resumes after the gateway goes away without a gap or a repeat", async () => {
    const path = `${root}/follow`;
    await append(path, { type: "tick", payload: { n: 0 } });
    const port = await freePort();
    let edge = await startGateway({}, port);
    const tail = start(["tail", path, "--json"], { url: edge.url });
    try {
      await waitFor(() => Promise.resolve(tail.stdout().includes('"n":0') ? true : undefined), 10_000, "history");
      await append(path, { type: "tick", payload: { n: 1 } });
      await waitFor(() => Promise.resolve(tail.stdout().includes('"n":1') ? true : undefined), 5_000, "a live event");
      // The gateway the CLI reads through goes away; events go on being stored through another.
      await edge.close();
      for (let n = 2; n <= 6; n++) await append(path, { type: "tick", payload: { n } });
      edge = await startGateway({}, port);
      await append(path, { type: "tick", payload: { n: 7 } });
      await waitFor(() => Promise.resolve(tail.stdout().includes('"n":7') ? true : undefined), 20_000, "the events after the outage");
      const seen = tail
        .stdout()
        .trim()
        .split("\n")
        .map((line) => (JSON.parse(line) as EventEnvelope).payload as { n: number });
      expect(seen.map((p) => p.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    } finally {
      tail.child.kill("SIGINT");
      const ended = await tail.done;
      expect(ended.code).toBe(0);
      await edge.close();
    }
  }, 60_000);

  it("chats: the answer streams in token by token, and the stored answer is the whole of it", async () => {
    const path = `${root}/chat`;
    const chat = start(["chat", path], { stdin: "one two three four five six\n" });
    const ended = await chat.done;
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stdout).toBe("assistant> echo: one two three four five six \n");
    // Streamed: the answer arrived in several writes spread over the model's time, not at once.
    const answerWrites = chat.writes.filter((w) => !w.text.startsWith("assistant> ") || w.text.length > "assistant> ".length);
    expect(answerWrites.length).toBeGreaterThanOrEqual(3);
    const spreadMs = (answerWrites.at(-1)?.at ?? 0) - (answerWrites[0]?.at ?? 0);
    expect(spreadMs).toBeGreaterThan(300);
    const events = await readAll(gw.url, path);
    expect(events.map((e) => e.type)).toEqual(["agent/input-added", "agent/llm-request-started", "agent/llm-request-settled"]);
  }, 30_000);

  it("prints each processor's state at an offset, and pauses and resumes", async () => {
    const path = `${root}/travel`;
    const chat = await run(["chat", path], { stdin: "alpha\nbeta\n" });
    expect(chat.code, chat.stderr).toBe(0);
    const events = await readAll(gw.url, path);
    const firstSettled = events.find((e) => e.type === "agent/llm-request-settled") as EventEnvelope;
    const then = await run(["state", path, "--processor", "llm", "--at", String(firstSettled.offset)]);
    const state = JSON.parse(then.stdout) as { throughOffset: number; processors: { llm: { state: { messages: { content: string }[] } } } };
    expect(state.throughOffset).toBe(firstSettled.offset);
    expect(state.processors.llm.state.messages.map((m) => m.content)).toEqual(["alpha", "echo: alpha "]);
    // The agent's usage for a person, beside the JSON (the echo provider reports none: estimated).
    expect(then.stderr).toMatch(/^usage: [1-9]\d* tokens \(\d+ in, \d+ out\), \$0\.000000; no budget$/m);

    expect((await run(["pause", path, "--reason", "for the test"])).code).toBe(0);
    const refused = await run(["append", path, "note", "{}"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("agentmesh: STREAM_PAUSED:");
    const resumed = await run(["resume", path]);
    expect(resumed.stdout).toContain("stream/resumed");
    expect((await run(["append", path, "note", "{}"])).code).toBe(0);
  }, 30_000);

  describe("errors", () => {
    let authGw: TestGateway;
    beforeAll(async () => {
      authGw = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET });
    });
    afterAll(async () => {
      await authGw.close();
    });

    it("names the gateway's error code and exits non-zero: no token, a token for other streams, bad arguments, no gateway", async () => {
      const path = `${root}/secured`;
      const none = await run(["tail", path, "--no-follow"], { url: authGw.url });
      expect(none.code).toBe(1);
      expect(none.stderr).toContain("agentmesh: UNAUTHENTICATED:");
      const elsewhere = await mintToken([{ path: "/elsewhere/**", rights: ["read", "append"] }]);
      const forbidden = await run(["append", path, "note", "{}"], { url: authGw.url, token: elsewhere });
      expect(forbidden.code).toBe(1);
      expect(forbidden.stderr).toContain("agentmesh: FORBIDDEN:");
      const live = await run(["tail", path], { url: authGw.url, token: elsewhere });
      expect(live.code).toBe(1);
      expect(live.stderr).toContain("agentmesh: FORBIDDEN:");
      const badJson = await run(["append", path, "note", "{nope"], { url: authGw.url, token: elsewhere });
      expect(badJson.stderr).toContain("agentmesh: INVALID_JSON:");
      const badArgs = await run(["tail", path, "--after", "x"]);
      expect(badArgs.code).toBe(2);
      const missing = await run(["tail"]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain("missing required argument");
      const unreachable = await run(["ls"], { url: `http://127.0.0.1:${await freePort()}` });
      expect(unreachable.code).toBe(1);
      expect(unreachable.stderr).toContain("agentmesh: UNREACHABLE:");
    });
  });
});
