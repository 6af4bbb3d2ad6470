import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client.js";
import type { StreamState } from "../api/types.js";
import { JsonPanel } from "../ui/json-view.js";

/**
 * Time travel: each processor's state right after the chosen event, folded by the gateway from the log with the
 * processors' own reducers (`GET /streams/<path>/state?at=`).
 */
export function StateView(props: { path: string; at: number | null; lastOffset: number | null; onAt: (offset: number | null) => void }) {
  const [state, setState] = useState<StreamState | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [draft, setDraft] = useState(props.at === null ? "" : String(props.at));
  useEffect(() => { setDraft(props.at === null ? "" : String(props.at)); }, [props.at]);

  useEffect(() => {
    let live = true;
    setError(null);
    api.state(props.path, props.at).then(
      (answer) => {
        if (live) setState(answer);
      },
      (err: unknown) => {
        if (live) setError(err instanceof ApiError ? err.plain : String(err));
      },
    );
    return () => {
      live = false;
    };
  }, [props.path, props.at, props.lastOffset]);

  return (
    <div className="state-view">
      <form
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          props.onAt(/^\d+$/.test(draft.trim()) ? Number(draft.trim()) : null);
        }}
      >
        <label htmlFor="state-at">State after offset</label>
        <input id="state-at" value={draft} placeholder="latest" onChange={(e) => { setDraft(e.target.value); }} />
        <button type="submit">Travel</button>
        <button type="button" onClick={() => { props.onAt(null); }}>
          Latest
        </button>
        {state === null ? null : (
          <span className="muted small" data-testid="state-through">
            through offset {state.throughOffset} ({state.eventsFolded} events folded; the stream is at {state.lastOffset})
          </span>
        )}
      </form>
      {error === null ? null : <p className="error">{error}</p>}
      {state === null
        ? null
        : Object.entries(state.processors).map(([name, view]) => (
            <section key={name} className="processor-state" data-processor={name}>
              <h3>{name}</h3>
              <JsonPanel value={view.state} label="state" depth={1} />
              <JsonPanel value={view.stream} label="stream (paused, recent reactions)" depth={1} />
            </section>
          ))}
    </div>
  );
}
