import { useEffect, useMemo, useRef, useState } from "react";
import { AgentSummary } from "./AgentSummary.js";
import { api, ApiError } from "../api/client.js";
import type { StreamLog } from "../stream/use-stream-log.js";
import { JsonPanel } from "../ui/json-view.js";
import { durationMs, formatMs } from "../ui/time.js";
import { transcriptOf, type TranscriptEntry } from "./transcript.js";

/** Events that change what the agent summary shows: usage, budget, tools. */
const SUMMARY_EVENT_TYPES: ReadonlySet<string> = new Set(["agent/llm-request-settled", "agent/context-compacted", "agent/budget-configured", "agent/configured", "agent/mcp-servers-configured", "agent/tools-discovered"]);

function Entry({ entry }: { entry: TranscriptEntry }) {
  switch (entry.kind) {
    case "input":
      return (
        <div className={`message ${entry.role}`} data-testid="message-user">
          <span className="who">{entry.role}</span>
          <p>{entry.content}</p>
        </div>
      );
    case "request": {
      const result = entry.result;
      const text = result === null ? entry.streamed : result.status === "succeeded" ? result.text : result.status === "cancelled" ? result.partialText : "";
      return (
        <div className={`message assistant${result === null ? " streaming" : ""}`} data-testid="message-assistant" data-offset={entry.offset}>
          <span className="who">
            assistant · {entry.model}
            {result === null ? " · answering…" : ` · ${result.status} · ${formatMs(durationMs(entry.startedAt, entry.settledAt ?? entry.startedAt))}`}
            {result?.status === "succeeded" && result.usage !== null ? ` · ${result.usage.promptTokens} in / ${result.usage.completionTokens} out tokens` : ""}
          </span>
          <p>{text}</p>
          {result?.status === "failed" ? <p className="error">{result.error}</p> : null}
          {result?.status === "cancelled" ? <p className="muted">cancelled: {result.reason}</p> : null}
        </div>
      );
    }
    case "tool":
      return (
        <div className="message tool" data-testid="message-tool">
          <span className="who">
            tool call · {entry.name} · {entry.outcome === null ? "running…" : formatMs(durationMs(entry.requestedAt, entry.settledAt ?? entry.requestedAt))}
          </span>
          <code className="arguments">{entry.arguments}</code>
          {entry.outcome === null ? null : "error" in entry.outcome ? <p className="error">{entry.outcome.error}</p> : <JsonPanel value={entry.outcome.result} label="result" depth={1} />}
        </div>
      );
    case "pause":
      return (
        <div className="message pause">
          <span className="who">{entry.type}</span>
          <p>{entry.reason}</p>
        </div>
      );
  }
}

/** Talk to the agent: the conversation from the log, the answer streaming in, a composer, interrupt and resume. */
export function ConversationView(props: { path: string; log: StreamLog; canAppend: boolean; canAdmin: boolean }) {
  const { log } = props;
  const transcript = useMemo(() => transcriptOf(log.items), [log.items, log.version]);
  // The summary is folded again only when an event that changes it was stored (a fold reads the whole stream).
  const factsVersion = useMemo(() => log.items.filter((item) => item.stored && SUMMARY_EVENT_TYPES.has(item.event.type)).length, [log.items, log.version]);
  const [message, setMessage] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  // The newest message stays in view as answers stream in, unless the person scrolled up to read.
  const transcriptBox = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  useEffect(() => {
    const box = transcriptBox.current;
    if (box !== null && pinned.current) box.scrollTop = box.scrollHeight;
  }, [log.version, transcript]);
  const onScroll = (): void => {
    const box = transcriptBox.current;
    if (box !== null) pinned.current = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  };

  const canSend = !busy && !log.paused && message.trim() !== "";
  const send = async (trigger: "auto" | "interrupt"): Promise<void> => {
    // An interrupt is a message too: what the agent should do instead of what it is answering.
    const content = message;
    if (!canSend || (trigger === "interrupt" && !transcript.running)) return;
    setBusy(true);
    setError(null);
    try {
      await api.append(props.path, { type: "agent/input-added", payload: { role: "user", content, trigger } });
      setMessage("");
      pinned.current = true;
    } catch (err) {
      setError(err instanceof ApiError ? err.plain : String(err));
    } finally {
      setBusy(false);
    }
  };
  const resume = async (): Promise<void> => {
    setError(null);
    try {
      await api.resume(props.path, "resumed from the console");
    } catch (err) {
      setError(err instanceof ApiError ? err.plain : String(err));
    }
  };

  return (
    <div className="conversation">
      {/* A stream with nothing stored yet has no state to fold (the gateway answers 404). */}
      {log.items.some((item) => item.stored) ? <AgentSummary path={props.path} version={factsVersion} /> : null}
      <div className="transcript" aria-label="Conversation" ref={transcriptBox} onScroll={onScroll}>
        {transcript.entries.length === 0 ? <p className="muted">No messages in the loaded history yet.</p> : transcript.entries.map((entry) => <Entry key={`${entry.kind}${entry.offset}`} entry={entry} />)}
      </div>
      {error === null ? null : (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {props.canAppend ? (
        <form
          className="composer"
          onSubmit={(e) => {
            e.preventDefault();
            void send("auto");
          }}
        >
          <label htmlFor="composer-message">Message</label>
          <textarea
            id="composer-message"
            value={message}
            onChange={(e) => { setMessage(e.target.value); }}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                void send("auto");
              }
            }}
            rows={2}
          />
          <button type="submit" disabled={!canSend}>
            Send
          </button>
          <button type="button" disabled={!canSend || !transcript.running} onClick={() => void send("interrupt")} title="Cancel the answer being written and answer this message instead">
            Interrupt
          </button>
          {log.paused ? (
            <button type="button" disabled={!props.canAdmin} title={props.canAdmin ? "" : "Resuming needs the admin right"} onClick={() => void resume()}>
              Resume
            </button>
          ) : null}
        </form>
      ) : (
        <p className="muted" data-testid="read-only">
          This token may read this agent but not append to it: no composer.
        </p>
      )}
    </div>
  );
}
