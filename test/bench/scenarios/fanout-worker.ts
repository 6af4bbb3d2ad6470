import type { EventSourceMessage } from "eventsource-parser";
import { openSseStream, type SseStream } from "../support/sse-client.js";
import { epochMs } from "../support/stats.js";
import type { ConnectCommand, DeliveredReport, WorkerCommand, WorkerReport } from "./fanout-protocol.js";

/**
 * A child process holding a share of the fan-out scenario's SSE clients, so
 * that parsing 1,000 streams does not run on the same event loop that times
 * the run. Driven over IPC by fanout.ts.
 */

interface Client {
  offsets: number[];
  lastAt: number;
  stream?: SseStream;
}

const clients: Client[] = [];

function report(message: WorkerReport): void {
  process.send?.(message);
}

async function connectAll(command: ConnectCommand): Promise<void> {
  let next = 0;
  const opener = async (): Promise<void> => {
    while (next < command.clients) {
      const client: Client = { offsets: [], lastAt: Number.NaN };
      clients[next] = client;
      next += 1;
      const onEvent = (event: EventSourceMessage): void => {
        // Only stored events have an id; client.offsets.length tells when this one is complete.
        if (event.id === undefined) return;
        client.offsets.push(Number(event.id));
        if (client.offsets.length === command.expectedEvents) client.lastAt = epochMs();
      };
      client.stream = await openSseStream(command.url, onEvent);
      if (client.stream.status !== 200) throw new Error(`SSE answered ${client.stream.status}`);
    }
  };
  await Promise.all(Array.from({ length: command.concurrency }, opener));
  report({ kind: "connected", clients: clients.length });

  const deadline = Date.now() + command.timeoutMs;
  while (Date.now() < deadline && clients.some((c) => c.offsets.length < command.expectedEvents)) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // A grace period, so a duplicate or stray event sent after the last expected one is caught too.
  await new Promise((resolve) => setTimeout(resolve, 300));
  report(verify(command.expectedEvents));
}

function verify(expectedEvents: number): DeliveredReport {
  const reference = clients[0]?.offsets ?? [];
  const problems: string[] = [];
  let complete = 0;
  let matching = 0;
  const lastReceiptEpochMs: number[] = [];
  clients.forEach((client, index) => {
    if (client.offsets.length === expectedEvents) {
      complete += 1;
      lastReceiptEpochMs.push(client.lastAt);
    } else if (problems.length < 5) {
      problems.push(`client ${index} received ${client.offsets.length} of ${expectedEvents} events`);
    }
    const same = client.offsets.length === reference.length && client.offsets.every((offset, i) => offset === reference[i]);
    if (same) matching += 1;
    else if (problems.length < 5) problems.push(`client ${index} saw different offsets than client 0`);
  });
  return { kind: "delivered", clients: clients.length, complete, matchingReference: matching, reference, lastReceiptEpochMs, problems };
}

process.on("message", (command: WorkerCommand) => {
  if (command.kind === "close") {
    for (const client of clients) client.stream?.close();
    process.exit(0);
  }
  connectAll(command).catch((err: unknown) => {
    report({ kind: "error", message: err instanceof Error ? err.message : String(err) });
  });
});
// Never outlive the scenario, whatever happens to it.
process.on("disconnect", () => process.exit(0));
