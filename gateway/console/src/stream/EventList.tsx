import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef } from "react";
import { clock } from "../ui/time.js";
import type { LogItem } from "./use-stream-log.js";

const ROW_HEIGHT = 28;

function preview(payload: unknown): string {
  const text = payload === undefined ? "" : JSON.stringify(payload);
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

/**
 * The log as a virtual list: only the rows in view are in the DOM, so 100,000 events scroll as 30 do. Following
 * keeps the newest row in view as events arrive; scrolling up stops following, scrolling to the end resumes it.
 */
export function EventList(props: {
  items: readonly LogItem[];
  version: number;
  selected: number | null;
  follow: boolean;
  onFollowChange: (follow: boolean) => void;
  onSelect: (offset: number) => void;
  onNearTop: () => void;
}) {
  const { items, selected, follow } = props;
  const parent = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({ count: items.length, getScrollElement: () => parent.current, estimateSize: () => ROW_HEIGHT, overscan: 20, getItemKey: (index) => items[index]?.key ?? index });

  useEffect(() => {
    if (follow && items.length > 0) virtualizer.scrollToIndex(items.length - 1, { align: "end" });
  }, [props.version, follow, items.length, virtualizer]);

  // The selected event is brought into view when it changes (a deep link, a causation link, a jump).
  const lastScrolledTo = useRef<number | null>(null);
  useEffect(() => {
    if (selected === null || lastScrolledTo.current === selected) return;
    const index = items.findIndex((item) => item.stored && item.event.offset === selected);
    if (index === -1) return;
    lastScrolledTo.current = selected;
    props.onFollowChange(false);
    virtualizer.scrollToIndex(index, { align: "center" });
  }, [selected, props.version, items, virtualizer, props]);

  // Only a person scrolls up: rows arriving and the list's own scrolls to the end only ever move it down.
  const lastScrollTop = useRef(0);
  const onScroll = (): void => {
    const element = parent.current;
    if (element === null) return;
    const atEnd = element.scrollHeight - element.scrollTop - element.clientHeight < ROW_HEIGHT * 2;
    const scrolledUp = element.scrollTop < lastScrollTop.current - 1;
    lastScrollTop.current = element.scrollTop;
    if (follow && scrolledUp && !atEnd) props.onFollowChange(false);
    if (!follow && atEnd && !scrolledUp) props.onFollowChange(true);
    if (element.scrollTop < ROW_HEIGHT * 5) props.onNearTop();
  };

  return (
    <div ref={parent} className="event-list" onScroll={onScroll} role="list" aria-label="Events">
      <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
        {virtualizer.getVirtualItems().map((row) => {
          const item = items[row.index];
          if (item === undefined) return null;
          const event = item.event;
          const isSelected = item.stored && item.event.offset === selected;
          return (
            <div
              key={row.key}
              role="listitem"
              className={`event-row${isSelected ? " selected" : ""}${item.stored ? "" : " ephemeral"}`}
              data-offset={item.stored ? item.event.offset : undefined}
              data-type={event.type}
              style={{ transform: `translateY(${row.start}px)`, height: ROW_HEIGHT }}
              onClick={() => {
                if (item.stored) props.onSelect(item.event.offset);
              }}
            >
              <span className="offset">{item.stored ? item.event.offset : "live"}</span>
              <span className="time">{clock(event.createdAt)}</span>
              <span className="type">{event.type}</span>
              <span className="processor">{event.source?.processor ?? ""}</span>
              {item.stored ? null : <span className="badge" title="Ephemeral: shown live, never stored">not stored</span>}
              <span className="preview">{preview(event.payload)}</span>
            </div>
          );
        })}
      </div>
    </div>
  );
}
