import { useState } from "react";
import { useLocation, useSearch } from "wouter";
import { ConversationView } from "../agent/ConversationView.js";
import { RequestsView } from "../agent/RequestsView.js";
import type { Access } from "../api/access.js";
import { OperatePanel } from "../operate/OperatePanel.js";
import { eventHref } from "../ui/links.js";
import { useDebounced } from "../ui/use-debounced.js";
import { EventsTab } from "./EventsTab.js";
import { StateView } from "./StateView.js";
import { useStreamLog } from "./use-stream-log.js";

const TABS = ["Events", "Conversation", "Model requests", "State", "Operate"] as const;
type Tab = (typeof TABS)[number];

/** One stream: `/console/streams/<path>?offset=<n>&tab=<tab>` opens it with the event selected and in view. */
export function StreamPage(props: { path: string; access: Access }) {
  const { path, access } = props;
  const search = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const offsetParam = search.get("offset");
  const selected = offsetParam !== null && /^\d+$/.test(offsetParam) ? Number(offsetParam) : null;
  const tabParam = search.get("tab");
  const tab: Tab = TABS.find((t) => t.toLowerCase().replace(" ", "-") === tabParam) ?? "Events";
  const atParam = search.get("at");
  const [stateAt, setStateAt] = useState<number | null>(atParam !== null && /^\d+$/.test(atParam) ? Number(atParam) : null);
  // Decided from the token's grants (GET /me) by the gateway's own rules; the gateway still checks every read.
  const denied = access.me !== null && !access.may("read", path);
  const log = useStreamLog(path, !denied);
  let newest: number | null = null;
  for (let i = log.items.length - 1; i >= 0 && newest === null; i--) {
    const item = log.items[i];
    if (item?.stored === true) newest = item.event.offset;
  }
  // Views that ask the gateway again as the stream moves ask once a burst is over.
  const lastOffset = useDebounced(newest, 700);
  const isAgent = log.hasAgentEvents;

  const go = (next: Tab, extra: Record<string, string> = {}): void => {
    const query = new URLSearchParams({ ...(selected === null ? {} : { offset: String(selected) }), ...extra });
    if (next !== "Events") query.set("tab", next.toLowerCase().replace(" ", "-"));
    const text = query.toString();
    navigate(`/streams${path}${text === "" ? "" : `?${text}`}`);
  };

  return (
    <div className="stream-page">
      <header className="stream-header">
        <h2>{path}</h2>
        {denied ? null : (
          <span className={`status ${log.status}`} data-testid="live-status">
            {log.status}
          </span>
        )}
        {log.paused ? (
          <span className="badge paused" data-testid="paused-badge">
            paused
          </span>
        ) : null}
        {isAgent ? <span className="badge">agent</span> : null}
      </header>
      {denied ? (
        <p className="error" role="alert">
          Not allowed: this token may not read {path}.
        </p>
      ) : log.error === null ? null : (
        <p className="error" role="alert">
          {log.error.plain}
        </p>
      )}
      <nav className="tabs" role="tablist">
        {TABS.map((name) => (
          <button key={name} type="button" role="tab" aria-selected={tab === name} className={tab === name ? "active" : ""} onClick={() => { go(name); }}>
            {name}
          </button>
        ))}
      </nav>
      {log.loading ? <p className="muted">Loading the newest events…</p> : null}
      {tab === "Events" ? (
        <EventsTab
          log={log}
          selected={selected}
          onSelect={(offset) => { navigate(eventHref(path, offset)); }}
          onTravel={(offset) => {
            setStateAt(offset);
            go("State", { at: String(offset) });
          }}
        />
      ) : null}
      {tab === "Conversation" ? <ConversationView path={path} log={log} canAppend={access.may("append", path)} canAdmin={access.may("admin", path)} /> : null}
      {tab === "Model requests" ? <RequestsView path={path} log={log} /> : null}
      {tab === "State" ? (
        <StateView
          path={path}
          at={stateAt}
          lastOffset={stateAt === null ? lastOffset : null}
          onAt={(at) => {
            setStateAt(at);
            go("State", at === null ? {} : { at: String(at) });
          }}
        />
      ) : null}
      {tab === "Operate" ? <OperatePanel path={path} paused={log.paused} lastOffset={lastOffset} canAdmin={access.may("admin", path)} canAppend={access.may("append", path)} /> : null}
    </div>
  );
}
