/** IPC messages between the fan-out scenario and its SSE client worker processes. */

export interface ConnectCommand {
  kind: "connect";
  url: string;
  clients: number;
  /** Connections opened at once; more would overflow the server's accept backlog and stall on SYN retries. */
  concurrency: number;
  /** Stored events each client must receive before the worker reports. */
  expectedEvents: number;
  timeoutMs: number;
}

export interface CloseCommand {
  kind: "close";
}

export type WorkerCommand = ConnectCommand | CloseCommand;

export interface ConnectedReport {
  kind: "connected";
  clients: number;
}

export interface DeliveredReport {
  kind: "delivered";
  clients: number;
  /** Clients that received exactly `expectedEvents` stored events. */
  complete: number;
  /** Clients whose offsets equal `reference`, element by element. */
  matchingReference: number;
  /** The offsets client 0 received, in order; the scenario compares them to what was appended. */
  reference: number[];
  /** Epoch ms at which each complete client received its last expected event. */
  lastReceiptEpochMs: number[];
  problems: string[];
}

export interface ErrorReport {
  kind: "error";
  message: string;
}

export type WorkerReport = ConnectedReport | DeliveredReport | ErrorReport;
