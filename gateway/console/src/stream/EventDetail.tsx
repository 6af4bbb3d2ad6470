import { useState } from "react";
import { Link } from "wouter";
import type { StoredEvent } from "../api/types.js";
import { JsonPanel } from "../ui/json-view.js";
import { absoluteEventUrl, eventHref } from "../ui/links.js";
import { clock } from "../ui/time.js";
import { ForkForm } from "./ForkForm.js";

/**
 * One event in full: where it came from (the processor, and the event that caused it, a link), what it caused
 * (every loaded event whose `source.causationOffset` is this one), its payload, and a link to it.
 */
export function EventDetail(props: { event: StoredEvent; caused: readonly StoredEvent[]; onTravel: (offset: number) => void }) {
  const { event } = props;
  const [copied, setCopied] = useState<string | null>(null);
  const [forking, setForking] = useState(false);
  const url = absoluteEventUrl(event.streamPath, event.offset);
  const copy = (): void => {
    // Undefined outside a secure context (plain http to a remote host): the link beside the button is selected instead.
    const clipboard = navigator.clipboard as Clipboard | undefined;
    const selectLink = (): void => {
      const link = document.querySelector('[data-testid="event-link"]');
      if (link !== null) getSelection()?.selectAllChildren(link);
      setCopied("Selected: copy it with Ctrl+C");
    };
    if (clipboard === undefined) {
      selectLink();
      return;
    }
    clipboard.writeText(url).then(() => {
      setCopied("Copied");
    }, selectLink);
  };
  const cause = event.source?.causationOffset;
  return (
    <section className="event-detail" aria-label={`Event ${event.offset}`}>
      <h3>
        <span className="type">{event.type}</span> <span className="muted">at offset {event.offset}</span>
      </h3>
      <dl>
        <dt>Time</dt>
        <dd title={event.createdAt}>{clock(event.createdAt)} · {event.createdAt}</dd>
        <dt>Written by</dt>
        <dd>{event.source?.processor ?? "a client"}</dd>
        <dt>Caused by</dt>
        <dd>
          {cause === undefined ? (
            <span className="muted">nothing in the log (outside input)</span>
          ) : (
            <Link href={eventHref(event.streamPath, cause)} className="causation-link" data-testid="caused-by">
              offset {cause}
            </Link>
          )}
        </dd>
        <dt>Caused</dt>
        <dd data-testid="caused">
          {props.caused.length === 0 ? (
            <span className="muted">no loaded event</span>
          ) : (
            props.caused.map((effect) => (
              <Link key={effect.offset} href={eventHref(event.streamPath, effect.offset)} className="causation-link">
                {effect.offset} {effect.type}
              </Link>
            ))
          )}
        </dd>
        {event.forkedFrom === undefined ? null : (
          <>
            <dt>Inherited from</dt>
            <dd>
              <Link href={eventHref(event.forkedFrom.path, event.forkedFrom.offset)} className="causation-link" data-testid="forked-from">
                {event.forkedFrom.path} at offset {event.forkedFrom.offset}
              </Link>
            </dd>
          </>
        )}
        {event.idempotencyKey === undefined ? null : (
          <>
            <dt>Idempotency key</dt>
            <dd>{event.idempotencyKey}</dd>
          </>
        )}
      </dl>
      <div className="actions">
        <button type="button" onClick={copy}>
          {copied ?? "Copy link"}
        </button>
        <a href={url} className="muted small" data-testid="event-link">
          {url}
        </a>
        <button type="button" onClick={() => { props.onTravel(event.offset); }}>
          State after this event
        </button>
        <button type="button" onClick={() => { setForking(true); }} disabled={forking}>
          Fork from here
        </button>
      </div>
      {forking ? <ForkForm event={event} onClose={() => { setForking(false); }} /> : null}
      <JsonPanel value={event.payload} label="payload" />
      {event.metadata === undefined ? null : <JsonPanel value={event.metadata} label="metadata" />}
    </section>
  );
}
