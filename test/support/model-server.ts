import { createServer, type ServerResponse } from "node:http";

/** What the scripted model answers to one request. */
export interface ScriptedAnswer {
  /** An HTTP error instead of an answer (the SDK retries 429 and 5xx). */
  status?: number;
  /** Text deltas, streamed one per chunk. */
  chunks?: string[];
  /** Pause between chunks, to make room for interruptions. */
  chunkDelayMs?: number;
  toolCalls?: { id: string; name: string; arguments: string }[];
}

export interface RecordedRequest {
  model: string;
  stream: boolean;
  messages: { role: string; content?: string | null; tool_call_id?: string; tool_calls?: unknown[] }[];
  tools?: unknown[];
  /** The client went away before the answer was complete. */
  aborted: boolean;
}

export interface ModelServer {
  /** Base URL for the OpenAI SDK (`.../v1`). */
  baseURL: string;
  requests: RecordedRequest[];
  /** Answers are taken in order; when none is left, `fallback` answers. */
  script: ScriptedAnswer[];
  fallback: (request: RecordedRequest) => ScriptedAnswer;
  /** The usage reported for an answer (null: none, as some models do); default: 10 prompt tokens, one completion token per chunk. */
  usage: (request: RecordedRequest, answer: ScriptedAnswer) => { prompt_tokens: number; completion_tokens: number } | null;
  close(): Promise<void>;
}

function sse(res: ServerResponse, data: unknown): void {
  res.write(`data: ${JSON.stringify(data)}\n\n`);
}

export function defaultUsage(_request: RecordedRequest, answer: ScriptedAnswer): { prompt_tokens: number; completion_tokens: number } {
  return { prompt_tokens: 10, completion_tokens: (answer.chunks ?? []).length };
}

/**
 * A real HTTP server on loopback that speaks the OpenAI chat-completions
 * protocol (`POST /v1/chat/completions`), streaming included: text deltas,
 * tool-call deltas split across chunks, a usage chunk and `[DONE]`.
 */
export async function startModelServer(): Promise<ModelServer> {
  const model: ModelServer = {
    baseURL: "",
    requests: [],
    script: [],
    fallback: () => ({ chunks: ["ok"] }),
    usage: defaultUsage,
    close: () =>
      new Promise((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      void (async () => {
        if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
          res.writeHead(404).end();
          return;
        }
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Omit<RecordedRequest, "aborted">;
        const recorded: RecordedRequest = { ...body, aborted: false };
        model.requests.push(recorded);
        res.on("close", () => {
          if (!res.writableFinished) recorded.aborted = true;
        });
        const answer = model.script.shift() ?? model.fallback(recorded);
        if (answer.status !== undefined) {
          res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: `scripted ${answer.status}`, type: "server_error" } }));
          return;
        }
        const id = `chatcmpl-${model.requests.length}`;
        const base = { id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model: body.model };
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        sse(res, { ...base, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] });
        for (const text of answer.chunks ?? []) {
          if (answer.chunkDelayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, answer.chunkDelayMs));
          if (res.destroyed) return;
          sse(res, { ...base, choices: [{ index: 0, delta: { content: text }, finish_reason: null }] });
        }
        (answer.toolCalls ?? []).forEach((call, index) => {
          // As real servers do: id and name first, the arguments in two fragments after.
          const half = Math.floor(call.arguments.length / 2);
          sse(res, { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }] }, finish_reason: null }] });
          sse(res, { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, function: { arguments: call.arguments.slice(0, half) } }] }, finish_reason: null }] });
          sse(res, { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, function: { arguments: call.arguments.slice(half) } }] }, finish_reason: null }] });
        });
        sse(res, { ...base, choices: [{ index: 0, delta: {}, finish_reason: (answer.toolCalls ?? []).length > 0 ? "tool_calls" : "stop" }] });
        const usage = model.usage(recorded, answer);
        if (usage !== null) sse(res, { ...base, choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } });
        res.end("data: [DONE]\n\n");
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  model.baseURL = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}/v1`;
  return model;
}
