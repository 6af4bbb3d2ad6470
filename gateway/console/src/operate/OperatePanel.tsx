import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client.js";
import type { ScheduleView } from "../../../../shared/state/schedules.js";
import type { SubscriptionView } from "../../../../shared/state/subscriptions.js";
import { EventEditor } from "./EventEditor.js";

/** Run the stream: pause and resume, schedules and subscriptions (from the log, with cancel and remove), any event. */
export function OperatePanel(props: { path: string; paused: boolean; lastOffset: number | null; canAdmin: boolean; canAppend: boolean }) {
  const [schedules, setSchedules] = useState<ScheduleView[]>([]);
  const [subscriptions, setSubscriptions] = useState<SubscriptionView[]>([]);
  const [message, setMessage] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    Promise.all([api.state(props.path, null, "scheduler"), api.state(props.path, null, "webhook-pusher")]).then(
      ([scheduler, pusher]) => {
        if (!live) return;
        setSchedules(Object.values((scheduler.processors.scheduler?.state as { schedules: Record<string, ScheduleView> } | undefined)?.schedules ?? {}));
        setSubscriptions(Object.values((pusher.processors["webhook-pusher"]?.state as { subscriptions: Record<string, SubscriptionView> } | undefined)?.subscriptions ?? {}));
      },
      (err: unknown) => {
        if (live) setMessage(err instanceof ApiError ? err.plain : String(err));
      },
    );
    return () => {
      live = false;
    };
  }, [props.path, props.lastOffset]);

  const act = async (what: () => Promise<unknown>, done: string): Promise<void> => {
    setMessage(null);
    try {
      await what();
      setMessage(done);
    } catch (err) {
      setMessage(err instanceof ApiError ? err.plain : String(err));
    }
  };

  /** Ends a schedule or a subscription by appending the event that says so (admin only). */
  const endButton = (label: string, type: string, slug: string, done: string) => (
    <button type="button" disabled={!props.canAdmin} onClick={() => void act(() => api.append(props.path, { type, payload: { slug } }), `${done} ${slug}`)}>
      {label}
    </button>
  );

  return (
    <div className="operate">
      {message === null ? null : (
        <p role="status" className="notice">
          {message}
        </p>
      )}
      <section aria-label="Pause and resume">
        <h3>{props.paused ? "Paused" : "Running"}</h3>
        {props.paused ? (
          <button type="button" disabled={!props.canAdmin} onClick={() => void act(() => api.resume(props.path, "resumed from the console"), "Resumed")}>
            Resume
          </button>
        ) : (
          <button type="button" disabled={!props.canAdmin} title={props.canAdmin ? "" : "Pausing needs the admin right"} onClick={() => void act(() => api.append(props.path, { type: "stream/paused", payload: { reason: "paused from the console" } }), "Paused")}>
            Pause
          </button>
        )}
      </section>
      <section aria-label="Schedules">
        <h3>Schedules</h3>
        {schedules.length === 0 ? <p className="muted">None.</p> : null}
        <table>
          <tbody>
            {schedules.map((schedule) => (
              <tr key={schedule.slug} data-slug={schedule.slug}>
                <td>{schedule.slug}</td>
                <td>
                  <code>{JSON.stringify(schedule.schedule)}</code>
                </td>
                <td>
                  appends {schedule.append.type}; fired {schedule.fired}×
                </td>
                <td>
                  {schedule.cancelledAt !== null ? (
                    "cancelled"
                  ) : schedule.done ? (
                    "done (fired once)"
                  ) : (
                    endButton("Cancel", "schedule/cancelled", schedule.slug, "Cancelled")
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section aria-label="Subscriptions">
        <h3>Webhook subscriptions</h3>
        {subscriptions.length === 0 ? <p className="muted">None.</p> : null}
        <table>
          <tbody>
            {subscriptions.map((subscription) => (
              <tr key={subscription.slug} data-slug={subscription.slug}>
                <td>{subscription.slug}</td>
                <td>{subscription.url.startsWith("sealed:") ? "sealed URL (it may hold a credential)" : subscription.url}</td>
                <td>
                  {subscription.failures} deliveries given up on{subscription.lastFailure === null ? "" : ` (last: ${subscription.lastFailure.error})`}; retries in progress show on the Processors page
                </td>
                <td>
                  {subscription.ended !== null ? (
                    subscription.ended.reason
                  ) : (
                    endButton("Remove", "subscription/removed", subscription.slug, "Removed")
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      {props.canAppend ? <EventEditor path={props.path} /> : null}
    </div>
  );
}
