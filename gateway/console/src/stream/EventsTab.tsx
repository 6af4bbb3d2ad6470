import { useEffect, useMemo, useState } from "react";
import { typeMatcher } from "../../../../shared/contract/type-glob.js";
import type { StoredEvent } from "../api/types.js";
import { EventDetail } from "./EventDetail.js";
import { EventList } from "./EventList.js";
import type { LogItem, StreamLog } from "./use-stream-log.js";

function matches(item: LogItem, typeOk: (type: string) => boolean, text: string): boolean {
  if (!typeOk(item.event.type)) return false;
  if (text === "") return true;
  return JSON.stringify(item.event).toLowerCase().includes(text);
}

/** The log: filters, follow, jumps, history page by page, and the selected event in full. */
export function EventsTab(props: { log: StreamLog; selected: number | null; onSelect: (offset: number) => void; onTravel: (offset: number) => void }) {
  const { log, selected } = props;
  const [typeGlob, setTypeGlob] = useState("");
  const [text, setText] = useState("");
  const [follow, setFollow] = useState(selected === null);
  const [jump, setJump] = useState("");
  const [notice, setNotice] = useState<string | null>(null);

  const visible = useMemo(() => {
    const globs = typeGlob.split(",").map((glob) => glob.trim()).filter((glob) => glob !== "");
    const typeOk = globs.length === 0 ? () => true : typeMatcher(globs);
    const needle = text.trim().toLowerCase();
    if (globs.length === 0 && needle === "") return log.items;
    return log.items.filter((item) => matches(item, typeOk, needle));
    // log.version: the items array is appended to in place.
  }, [log.items, log.version, typeGlob, text]);

  // What the selected event caused: the loaded events naming it as their cause.
  const caused = useMemo(() => {
    if (selected === null) return [];
    const effects: StoredEvent[] = [];
    for (const item of log.items) if (item.stored && item.event.source?.causationOffset === selected) effects.push(item.event);
    return effects;
  }, [log.items, log.version, selected]);

  const doJump = async (): Promise<void> => {
    const value = jump.trim();
    setNotice(null);
    if (value === "") return;
    if (/^\d+$/.test(value)) {
      const offset = Number(value);
      const found = (await log.loadBackTo(offset)) || log.byOffset(offset) !== undefined;
      if (found) props.onSelect(offset);
      else setNotice(`Offset ${offset} is not an event of this stream`);
      return;
    }
    const time = new Date(value);
    if (Number.isNaN(time.getTime())) {
      setNotice("Jump to an offset (a number) or a time (2026-11-28T10:00:00Z)");
      return;
    }
    const offset = await log.loadBackToTime(time.toISOString());
    if (offset === null) setNotice(`No event at or after ${time.toISOString()}`);
    else props.onSelect(offset);
  };

  // A link to an event older than what is loaded loads history back to it.
  useEffect(() => {
    if (selected === null || log.loading || log.byOffset(selected) !== undefined) return;
    void log.loadBackTo(selected).then((found) => {
      if (!found) setNotice(`Offset ${selected} is not an event of this stream`);
    });
  }, [selected, log.loading]);

  const selectedEvent = selected === null ? undefined : log.byOffset(selected);
  return (
    <div className="events-tab">
      <div className="toolbar" role="toolbar" aria-label="Event filters">
        <input aria-label="Type filter" placeholder="type glob: agent/*, stream/**" value={typeGlob} onChange={(e) => { setTypeGlob(e.target.value); }} />
        <input aria-label="Text filter" placeholder="text in the event" value={text} onChange={(e) => { setText(e.target.value); }} />
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => { setFollow(e.target.checked); }} aria-label="Follow" /> Follow
        </label>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void doJump();
          }}
        >
          <input aria-label="Jump to offset or time" placeholder="offset or time" value={jump} onChange={(e) => { setJump(e.target.value); }} />
          <button type="submit">Jump</button>
        </form>
        <button type="button" disabled={log.reachedStart} onClick={() => void log.loadOlder()}>
          {log.reachedStart ? "Start of stream" : "Load older"}
        </button>
        <span className="muted small" data-testid="event-count">
          {visible.length} shown{visible.length === log.items.length ? "" : ` of ${log.items.length}`}
        </span>
      </div>
      {(typeGlob.trim() !== "" || text.trim() !== "") && !log.reachedStart ? (
        <p className="muted small" data-testid="filter-scope">
          Filters search the {log.items.length} events loaded; "Load older" brings earlier ones in.
        </p>
      ) : null}
      {notice === null ? null : (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      <div className="events-split">
        <EventList
          items={visible}
          version={log.version}
          selected={selected}
          follow={follow}
          onFollowChange={setFollow}
          onSelect={props.onSelect}
          onNearTop={() => {
            if (!log.reachedStart && !follow) void log.loadOlder();
          }}
        />
        {selectedEvent === undefined ? (
          <p className="muted event-detail empty">Select an event to see it in full.</p>
        ) : (
          <EventDetail key={selectedEvent.offset} event={selectedEvent} caused={caused} onTravel={props.onTravel} />
        )}
      </div>
    </div>
  );
}
