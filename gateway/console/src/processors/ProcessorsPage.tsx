import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client.js";
import type { ProcessorConsumer } from "../api/types.js";

/** Each processor's durable consumer as JetStream counts it, every 2 s: how far behind, what is redelivered, who is pulling. */
export function ProcessorsPage() {
  const [rows, setRows] = useState<ProcessorConsumer[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    const load = async (): Promise<void> => {
      try {
        const answer = await api.processors();
        if (!live) return;
        setRows(answer.processors);
        setError(null);
      } catch (err) {
        if (live) setError(err instanceof ApiError ? err.plain : String(err));
      }
    };
    void load();
    const timer = setInterval(() => void load(), 2_000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, []);
  return (
    <div className="processors-page">
      <h2>Processors</h2>
      {error === null ? null : (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <table className="grid">
        <thead>
          <tr>
            <th>name</th>
            <th>kind</th>
            <th>health</th>
            <th>lag (pending)</th>
            <th>ack pending</th>
            <th>redelivered</th>
            <th>ack floor</th>
            <th>delivered</th>
            <th>replicas pulling</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.consumer} data-processor={row.name}>
              <td>{row.name}</td>
              <td>{row.kind}</td>
              <td className={row.healthy ? "ok" : "error"}>{row.healthy ? "healthy" : "no replica pulling"}</td>
              <td>{row.pending}</td>
              <td>{row.ackPending}</td>
              <td>{row.redelivered}</td>
              <td>{row.ackFloor}</td>
              <td>{row.delivered}</td>
              <td>{row.waitingPulls}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
