import { useCallback, useEffect, useRef, useState } from "react";
import { api, ApiError, liveUrl } from "../api/client.js";
import { useToken } from "../api/token.js";
import type { EphemeralEvent, StoredEvent } from "../api/types.js";
import { eventsBefore, readBetween } from "./newest.js";
import { SystemEventTypes } from "../../../../shared/contract/wire.js";

/** One row of the log as the console shows it: a stored event, or an ephemeral one seen live (never stored). */
export type LogItem = { stored: true; key: string; event: StoredEvent } | { stored: false; key: string; event: EphemeralEvent };

export type LiveStatus = "connecting" | "live" | "reconnecting";

export interface StreamLog {
  items: readonly LogItem[];
  /** Bumped whenever `items` changed (it is one array, appended to in place). */
  version: number;
  reachedStart: boolean;
  loading: boolean;
  error: ApiError | null;
  status: LiveStatus;
  /** Paused as the gateway said when the view opened, then as the live pause and resume events say. */
  paused: boolean;
  /** Whether any loaded event is an `agent/*` event: the stream is an agent's. */
  hasAgentEvents: boolean;
  byOffset: (offset: number) => StoredEvent | undefined;
  loadOlder: () => Promise<void>;
  /** Loads history back to `offset` (contiguous with what is loaded) and returns whether the stream has it. */
  loadBackTo: (offset: number) => Promise<boolean>;
  /** The first stored offset at or after a time, loaded; null if none. */
  loadBackToTime: (iso: string) => Promise<number | null>;
}

const FIRST_PAINT_EVENTS = 300;
const PAUSING: ReadonlySet<string> = new Set([SystemEventTypes.paused, SystemEventTypes.agentPaused]);
const OLDER_PAGE_EVENTS = 500;
const MAX_EPHEMERAL_KEPT = 5_000;
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 15_000;

/**
 * A stream's log for the console: the newest events first (so a stream of 100,000 events paints at once), older
 * pages on demand, then the live tail over SSE from the last offset loaded. The browser's EventSource reconnects
 * by itself and sends Last-Event-ID, which the gateway resumes from: no gap, no repeat (repeats are dropped here
 * too, by offset). Live events are applied once per animation frame, so a burst of 1,000 events/s costs ~60
 * renders a second, not 1,000.
 */
export function useStreamLog(path: string, enabled = true): StreamLog {
  const token = useToken();
  const items = useRef<LogItem[]>([]);
  const offsets = useRef(new Map<number, StoredEvent>());
  const pending = useRef<LogItem[]>([]);
  const frame = useRef<number | null>(null);
  const ephemeralCount = useRef(0);
  const [version, setVersion] = useState(0);
  const [reachedStart, setReachedStart] = useState(false);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const [paused, setPaused] = useState(false);
  const olderInFlight = useRef(false);
  const agentSeen = useRef(false);

  const bump = useCallback(() => { setVersion((v) => v + 1); }, []);

  useEffect(() => {
    if (!enabled) return;
    // An object, not a boolean: checked after awaits, where a plain local would look constant to the compiler.
    const view = { open: true };
    let source: EventSource | null = null;
    let retry: ReturnType<typeof setTimeout> | undefined;
    items.current = [];
    offsets.current = new Map();
    agentSeen.current = false;
    pending.current = [];
    setReachedStart(false);
    setLoading(true);
    setError(null);
    setStatus("connecting");
    bump();

    const flush = (): void => {
      frame.current = null;
      if (!view.open || pending.current.length === 0) return;
      for (const item of pending.current) {
        items.current.push(item);
        if (item.event.type.startsWith("agent/")) agentSeen.current = true;
      }
      pending.current = [];
      // Streamed tokens are many: keep the newest few thousand in view.
      if (ephemeralCount.current > MAX_EPHEMERAL_KEPT) {
        let drop = ephemeralCount.current - MAX_EPHEMERAL_KEPT;
        items.current = items.current.filter((item) => item.stored || drop-- <= 0);
        ephemeralCount.current = MAX_EPHEMERAL_KEPT;
      }
      bump();
    };
    const enqueue = (item: LogItem): void => {
      pending.current.push(item);
      frame.current ??= requestAnimationFrame(flush);
    };

    void (async () => {
      try {
        const summary = (await api.listStreams(path)).streams.find((s) => s.path === path);
        // Not listed: not there yet; its first event will arrive live. (A token that may not read it never gets here:
        // the page says so from the token's grants.)
        const last = summary?.lastOffset ?? 0;
        setPaused(summary?.paused === true);
        const { events, reachedStart: atStart } = last === 0 ? { events: [], reachedStart: true } : await eventsBefore(path, last, FIRST_PAINT_EVENTS);
        if (!view.open) return;
        for (const event of events) {
          if (event.type.startsWith("agent/")) agentSeen.current = true;
          offsets.current.set(event.offset, event);
          items.current.push({ stored: true, key: `s${event.offset}`, event });
        }
        setReachedStart(atStart);
        setLoading(false);
        bump();
        let lastSeen = events.at(-1)?.offset ?? last;
        const onMessage = (message: MessageEvent<string>): void => {
          const parsed = JSON.parse(message.data) as StoredEvent | EphemeralEvent;
          if ("ephemeral" in parsed) {
            ephemeralCount.current++;
            enqueue({ stored: false, key: `e${Date.now()}-${Math.random()}`, event: parsed });
            return;
          }
          if (parsed.offset <= lastSeen || offsets.current.has(parsed.offset)) return;
          lastSeen = parsed.offset;
          if (PAUSING.has(parsed.type)) setPaused(true);
          if (parsed.type === SystemEventTypes.resumed) setPaused(false);
          offsets.current.set(parsed.offset, parsed);
          enqueue({ stored: true, key: `s${parsed.offset}`, event: parsed });
        };
        // The browser reconnects by itself after a dropped connection (sending Last-Event-ID), but gives up for good
        // when a reconnect is answered with an HTTP error (a 429, a 503 while NATS is away): then a new EventSource
        // starts after the last offset seen, with a growing delay.
        let retryMs = RETRY_MIN_MS;
        const connect = (): void => {
          if (!view.open) return;
          const current = new EventSource(liveUrl(path, lastSeen));
          source = current;
          current.onopen = () => {
            retryMs = RETRY_MIN_MS;
            setStatus("live");
          };
          current.onmessage = onMessage;
          current.onerror = () => {
            if (current.readyState !== EventSource.CLOSED) {
              setStatus("reconnecting");
              return;
            }
            current.close();
            setStatus("reconnecting");
            retry = setTimeout(connect, retryMs);
            retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
          };
        };
        connect();
      } catch (err) {
        if (!view.open) return;
        setLoading(false);
        setError(err instanceof ApiError ? err : new ApiError(0, "NETWORK", String(err)));
      }
    })();

    return () => {
      view.open = false;
      clearTimeout(retry);
      source?.close();
      if (frame.current !== null) cancelAnimationFrame(frame.current);
      frame.current = null;
    };
  }, [path, token, bump, enabled]);

  const firstStored = (): number | null => {
    for (const item of items.current) if (item.stored) return item.event.offset;
    return null;
  };

  const prepend = (events: readonly StoredEvent[]): void => {
    const fresh = events.filter((event) => !offsets.current.has(event.offset));
    for (const event of fresh) {
      offsets.current.set(event.offset, event);
      if (event.type.startsWith("agent/")) agentSeen.current = true;
    }
    items.current = [...fresh.map((event): LogItem => ({ stored: true, key: `s${event.offset}`, event })), ...items.current];
    bump();
  };

  const loadOlder = async (): Promise<void> => {
    const first = firstStored();
    if (first === null || reachedStart || olderInFlight.current) return;
    olderInFlight.current = true;
    try {
      const { events, reachedStart: atStart } = await eventsBefore(path, first - 1, OLDER_PAGE_EVENTS);
      prepend(events);
      setReachedStart(atStart || events.length === 0);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, "NETWORK", String(err)));
    } finally {
      olderInFlight.current = false;
    }
  };

  const loadBackTo = async (offset: number): Promise<boolean> => {
    const first = firstStored();
    if (offsets.current.has(offset)) return true;
    if (first === null || offset > first) return false;
    // Forward from the offset to what is loaded: contiguous, so the list never has a hole.
    const found = await readBetween(path, Math.max(0, offset - 1), first - 1);
    prepend(found);
    if (found[0] !== undefined && found[0].offset <= offset) setReachedStart(false);
    return offsets.current.has(offset);
  };

  const loadBackToTime = async (iso: string): Promise<number | null> => {
    const page = await api.read(path, { at: iso }, 1);
    const first = page.events[0];
    if (first === undefined) return null;
    await loadBackTo(first.offset);
    return first.offset;
  };

  return { items: items.current, version, reachedStart, loading, error, status, paused, hasAgentEvents: agentSeen.current, byOffset: (offset) => offsets.current.get(offset), loadOlder, loadBackTo, loadBackToTime };
}
