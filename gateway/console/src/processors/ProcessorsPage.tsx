import { api } from "../api/client.js";
import { usePolling } from "../ui/use-polling.js";
import type { ProcessorConsumer } from "../api/types.js";

/** Each processor's durable consumer as JetStream counts it, every 2 s: how far behind, what is redelivered, who is pulling. */
export function ProcessorsPage() {
  const { value, error } = usePolling(() => api.processors(), 2_000, []);
  const rows: ProcessorConsumer[] = value?.processors ?? [];
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
            <th>streams</th>
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
              <td>{row.stream ?? "all"}</td>
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
