import { useState } from "react";
import { useLocation } from "wouter";
import { api, ApiError } from "../api/client.js";
import type { StoredEvent } from "../api/types.js";
import { eventHref } from "../ui/links.js";

/**
 * "Fork from here": a new agent whose history is this stream's up to and including the event (docs/ARCHITECTURE.md,
 * "Forks"); the console then opens it, ready for a new input or another configuration. Whether the token may write
 * the new path is the gateway's to say: its refusal is shown as it comes.
 */
export function ForkForm(props: { event: StoredEvent; onClose: () => void }) {
  const { event } = props;
  const [to, setTo] = useState(`${event.streamPath}-fork-${event.offset}`);
  const [subscriptions, setSubscriptions] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [, navigate] = useLocation();
  const fork = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      const made = await api.fork(event.streamPath, { at: event.offset, to, subscriptions });
      navigate(eventHref(to, made.forked.offset));
    } catch (err) {
      setError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
      setBusy(false);
    }
  };
  return (
    <form
      className="fork-form"
      aria-label="Fork from here"
      onSubmit={(e) => {
        e.preventDefault();
        void fork();
      }}
    >
      <label>
        New stream <input value={to} onChange={(e) => { setTo(e.target.value); }} aria-label="Fork to" required />
      </label>
      <label className="small">
        <input type="checkbox" checked={subscriptions} onChange={(e) => { setSubscriptions(e.target.checked); }} /> its webhook subscriptions deliver the fork's events too (admin on both)
      </label>
      <p className="muted small">It inherits events up to and including offset {event.offset}; nothing of it runs again.</p>
      <button type="submit" disabled={busy}>
        {busy ? "Forking…" : "Fork"}
      </button>{" "}
      <button type="button" onClick={props.onClose}>
        Cancel
      </button>
      {error === null ? null : (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </form>
  );
}
