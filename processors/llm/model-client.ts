import OpenAI from "openai";
import type { ChatCompletionMessageParam, ChatCompletionTool } from "openai/resources/chat/completions/completions";
import type { Logger } from "../../shared/service/logger.js";
import type { ModelRequest } from "../../shared/state/conversation.js";
import type { ToolCall, Usage } from "../../shared/contract/events/agent.js";

export type { ModelRequest };

export interface ModelAnswer {
  text: string;
  toolCalls: ToolCall[];
  usage: Usage | null;
}

/** A chat model that streams: `onText` gets each text delta as it arrives; `signal` aborts the request. */
export interface ModelClient {
  readonly name: string;
  complete(request: ModelRequest, options: { signal: AbortSignal; onText: (delta: string) => void }): Promise<ModelAnswer>;
}

function toOpenAiMessages(request: ModelRequest): ChatCompletionMessageParam[] {
  const messages: ChatCompletionMessageParam[] = [];
  if (request.systemPrompt !== undefined && request.systemPrompt !== "") messages.push({ role: "system", content: request.systemPrompt });
  for (const message of request.messages) {
    switch (message.role) {
      case "assistant":
        messages.push(
          message.toolCalls.length === 0
            ? { role: "assistant", content: message.content }
            : {
                role: "assistant",
                content: message.content === "" ? null : message.content,
                tool_calls: message.toolCalls.map((call) => ({ id: call.callId, type: "function" as const, function: { name: call.name, arguments: call.arguments } })),
              },
        );
        break;
      case "tool":
        messages.push({ role: "tool", tool_call_id: message.toolCallId, content: message.content });
        break;
      default:
        messages.push({ role: message.role, content: message.content });
    }
  }
  return messages;
}

/**
 * Any OpenAI-compatible chat-completions endpoint, through the official SDK:
 * streaming on, native tool calls, and the SDK's own retries of 429 and 5xx.
 */
export class OpenAiModelClient implements ModelClient {
  readonly name = "openai-compatible";
  private readonly client: OpenAI;

  constructor(options: { baseURL: string; apiKey: string; maxRetries: number; timeoutMs: number }) {
    this.client = new OpenAI({ baseURL: options.baseURL, apiKey: options.apiKey, maxRetries: options.maxRetries, timeout: options.timeoutMs });
  }

  async complete(request: ModelRequest, options: { signal: AbortSignal; onText: (delta: string) => void }): Promise<ModelAnswer> {
    const tools: ChatCompletionTool[] = request.tools.map((tool) => ({ type: "function", function: { name: tool.name, description: tool.description, parameters: tool.parameters } }));
    const stream = await this.client.chat.completions.create(
      { model: request.model, messages: toOpenAiMessages(request), stream: true, stream_options: { include_usage: true }, ...(tools.length > 0 ? { tools } : {}) },
      { signal: options.signal },
    );
    let text = "";
    const calls = new Map<number, { id: string; name: string; arguments: string }>();
    let usage: Usage | null = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens };
      const delta = chunk.choices[0]?.delta;
      if (delta === undefined) continue;
      if (typeof delta.content === "string" && delta.content !== "") {
        text += delta.content;
        options.onText(delta.content);
      }
      for (const call of delta.tool_calls ?? []) {
        // Tool calls arrive in pieces keyed by index: the id and name first, then the arguments in fragments.
        const current = calls.get(call.index) ?? { id: "", name: "", arguments: "" };
        if (call.id !== undefined) current.id = call.id;
        if (call.function?.name !== undefined) current.name += call.function.name;
        if (call.function?.arguments !== undefined) current.arguments += call.function.arguments;
        calls.set(call.index, current);
      }
    }
    const toolCalls = [...calls.entries()].sort(([a], [b]) => a - b).map(([, call]) => ({ callId: call.id, name: call.name, arguments: call.arguments }));
    return { text, toolCalls, usage };
  }
}

/** The offline stand-in when no model is configured: it answers `echo: <last input>`, so the loop can be seen without a key. */
export class EchoModelClient implements ModelClient {
  readonly name = "echo";

  constructor(logger: Logger) {
    logger.warn("no LLM_BASE_URL configured: using the offline echo provider, which answers 'echo: <last input>'");
  }

  complete(request: ModelRequest, options: { signal: AbortSignal; onText: (delta: string) => void }): Promise<ModelAnswer> {
    const lastInput = [...request.messages].reverse().find((m) => m.role === "user" || m.role === "developer" || m.role === "system");
    const text = `echo: ${lastInput?.content ?? ""}`;
    if (options.signal.aborted) return Promise.reject(new Error("aborted"));
    options.onText(text);
    return Promise.resolve({ text, toolCalls: [], usage: null });
  }
}
