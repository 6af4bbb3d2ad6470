import { useEffect, useMemo, useState } from "react";
import { api, ApiError } from "../api/client.js";
import type { StreamLog } from "../stream/use-stream-log.js";
import { JsonPanel } from "../ui/json-view.js";
import { clock, durationMs, formatMs } from "../ui/time.js";
import { transcriptOf, type TranscriptEntry } from "./transcript.js";

type RequestEntry = Extract<TranscriptEntry, { kind: "request" }>;

/**
 * Every model request, and for the one chosen exactly what the model was sent: the gateway rebuilds it from the
 * log with the LLM processor's own reducer, as the conversation stood when the request started.
 */
export function RequestsView(props: { path: string; log: StreamLog }) {
  const { log } = props;
  const requests = useMemo(() => transcriptOf(log.items).entries.filter((entry): entry is RequestEntry => entry.kind === "request"), [log.items, log.version]);
  const [chosen, setChosen] = useState<number | null>(null);
  const [sent, setSent] = useState<unknown>(null);
  const [error, setError] = useState<string | null>(null);
  const current = requests.find((request) => request.offset === chosen) ?? requests.at(-1);

  useEffect(() => {
    if (current === undefined) return;
    let live = true;
    setSent(null);
    setError(null);
    api.state(props.path, current.offset, "llm").then(
      (answer) => {
        const state = answer.processors.llm?.state as { request?: unknown } | undefined;
        if (live) setSent(state?.request ?? null);
      },
      (err: unknown) => {
        if (live) setError(err instanceof ApiError ? err.plain : String(err));
      },
    );
    return () => {
      live = false;
    };
  }, [props.path, current?.offset]);

  if (requests.length === 0) return <p className="muted">No model request in the loaded history.</p>;
  return (
    <div className="requests">
      <ul className="request-list" aria-label="Model requests">
        {requests.map((request) => (
          <li key={request.offset}>
            <button type="button" className={request === current ? "selected" : ""} onClick={() => { setChosen(request.offset); }}>
              {request.offset} · {clock(request.startedAt)} · {request.model} · {request.result?.status ?? "running"}
            </button>
          </li>
        ))}
      </ul>
      {current === undefined ? null : (
        <section className="request-detail" aria-label={`Model request ${current.offset}`}>
          <h3>
            Request at offset {current.offset} · {current.model}
          </h3>
          <p>
            Status: <strong data-testid="request-status">{current.result?.status ?? "running"}</strong>
            {current.settledAt === null ? null : ` · ${formatMs(durationMs(current.startedAt, current.settledAt))}`}
            {current.result?.status === "succeeded" && current.result.usage !== null ? ` · ${current.result.usage.promptTokens} prompt + ${current.result.usage.completionTokens} completion tokens` : ""}
          </p>
          <h4>Sent to the model</h4>
          {error !== null ? <p className="error">{error}</p> : sent === null ? <p className="muted">Rebuilding from the log…</p> : <JsonPanel value={sent} depth={3} label="request" />}
          <h4>Response</h4>
          <pre className="response" data-testid="request-response">
            {current.result === null ? current.streamed : current.result.status === "succeeded" ? current.result.text : current.result.status === "cancelled" ? current.result.partialText : current.result.error}
          </pre>
          {current.result?.status === "succeeded" && current.result.toolCalls.length > 0 ? <JsonPanel value={current.result.toolCalls} label="tool calls" /> : null}
        </section>
      )}
    </div>
  );
}
