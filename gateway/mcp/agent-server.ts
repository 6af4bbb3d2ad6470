import type { FastifyBaseLogger } from "fastify";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { EventEnvelopeSchema } from "../../shared/contract/envelope.js";
import { parseStreamPath, type StreamPath } from "../../shared/contract/subjects.js";
import { Defaults } from "../../shared/contract/wire.js";
import type { Writer } from "../../shared/log/writer.js";
import { ask, DEFAULT_ASK_TIMEOUT_MS, MAX_ASK_TIMEOUT_SECONDS, type AskDeps } from "./ask.js";
import { listStreamsUnder } from "./list-streams.js";
import { DEFAULT_READ_EVENTS, eventsResult, readEvents } from "./read-events.js";
import { answering, jsonResult } from "./tool-result.js";

export interface AgentServerDeps extends AskDeps {
  /** How long `ask` waits for an answer when the call does not say (DEFAULT_ASK_TIMEOUT_MS unless configured). */
  askTimeoutMs: number;
}

/** Who asks, about which agent: one HTTP request's worth (the route authenticates before building the server). */
export interface AgentServerCaller {
  path: StreamPath;
  writer: Writer;
  log: FastifyBaseLogger;
}

const offset = z.number().int().nonnegative();

const AskInput = {
  message: z.string().min(1).describe("What to say to the agent, appended as agent/input-added {role: \"user\"}"),
  timeoutSeconds: z.number().int().min(1).max(MAX_ASK_TIMEOUT_SECONDS).optional().describe(`How long to wait for the answer (default ${DEFAULT_ASK_TIMEOUT_MS / 1000} s)`),
};
const AskOutput = {
  text: z.string().describe("The agent's answer"),
  inputOffset: offset.describe("Offset of the input in the agent's stream"),
  requestOffset: offset.describe("Offset of the model request that answered"),
  settledOffset: offset.describe("Offset of the agent/llm-request-settled event holding the answer"),
};
const ReadEventsInput = {
  after: offset.optional().describe("Read the events after this offset (as nextOffset of a previous read gives it); without it, the most recent events"),
  limit: z.number().int().min(1).max(Defaults.maxReadLimit).optional().describe(`How many events at most (default ${DEFAULT_READ_EVENTS})`),
};
const ReadEventsOutput = {
  events: z.array(EventEnvelopeSchema),
  nextOffset: offset.describe("Pass as `after` to read on"),
  upToDate: z.boolean().describe("Nothing was left to read when the page was taken"),
};
const ListStreamsInput = {
  limit: z.number().int().min(1).max(1000).optional().describe("How many streams at most (default 100)"),
  cursor: z.string().optional().describe("nextCursor of the previous page"),
};
const ListStreamsOutput = {
  streams: z.array(z.object({ path: z.string(), lastOffset: offset, eventCount: offset, lastEventAt: z.string().nullable(), paused: z.boolean() })),
  nextCursor: z.string().optional(),
};

/**
 * One agent as an MCP server (issue 16): `ask` it something, read its recent events, list the streams under it. Built
 * per HTTP request (route.ts says why); every tool answers failures as error results (tool-result.ts).
 */
export function agentServer(deps: AgentServerDeps, caller: AgentServerCaller): McpServer {
  const { path, writer, log } = caller;
  const server = new McpServer(
    { name: "agentmesh", version: "0.1.0" },
    { instructions: `The agentmesh agent at ${path}: every message, model request and tool call it makes is an event in its stream. \`ask\` talks to it; \`read-events\` shows what it did; \`list-streams\` lists the streams under it.` },
  );

  server.registerTool(
    "ask",
    {
      title: `Ask ${path}`,
      description: `Send the agent a message and wait for its answer: the text of its next model request that settles without tool calls (its tool rounds in between are followed). An error result if the request fails or is cancelled, the agent is paused, or no answer comes in time. Needs append and read on ${path}. Sends progress notifications as the agent works.`,
      inputSchema: AskInput,
      outputSchema: AskOutput,
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    },
    (args, extra) =>
      answering(log, async () => {
        const progressToken = extra._meta?.progressToken;
        let progress = 0;
        return ask(deps, {
          path,
          writer,
          message: args.message,
          timeoutMs: args.timeoutSeconds === undefined ? deps.askTimeoutMs : args.timeoutSeconds * 1000,
          signal: extra.signal,
          onEvent: (event) => {
            if (progressToken === undefined) return;
            progress += 1;
            extra.sendNotification({ method: "notifications/progress", params: { progressToken, progress, message: `${event.type} at offset ${event.offset}` } }).catch(() => undefined);
          },
        });
      }),
  );

  server.registerTool(
    "read-events",
    {
      title: `Read ${path}`,
      description: `The agent's events as stored, oldest first: the most recent ones, or those after an offset. Needs read on ${path}.`,
      inputSchema: ReadEventsInput,
      outputSchema: ReadEventsOutput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) => answering(log, async () => eventsResult(await readEvents(deps.nats, path, { after: args.after, limit: args.limit ?? DEFAULT_READ_EVENTS }))),
  );

  server.registerTool(
    "list-streams",
    {
      title: `Streams under ${path}`,
      description: `The streams at and under ${path} that the token may read, sorted by path, with last offset, event count, last event time and whether each is paused.`,
      inputSchema: ListStreamsInput,
      outputSchema: ListStreamsOutput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) =>
      answering(log, async () => {
        const cursor = args.cursor === undefined ? undefined : parseStreamPath(args.cursor);
        const page = await listStreamsUnder(deps, path, writer, { limit: args.limit ?? Defaults.readLimit, cursor });
        return jsonResult({ ...page });
      }),
  );

  return server;
}
