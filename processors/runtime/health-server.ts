import { createServer, type Server } from "node:http";
import { metricsRegistry } from "../../shared/service/metrics.js";

export interface HealthChecks {
  /** Ready to do its job (NATS connected, consumer running). */
  ready(): boolean;
}

/** `/healthz` (the process answers), `/readyz` and `/metrics` (Prometheus) for a processor, on its own small HTTP port. */
export async function startHealthServer(host: string, port: number, checks: HealthChecks): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((request, response) => {
    const path = (request.url ?? "").split("?", 1)[0];
    if (path === "/metrics") {
      void metricsRegistry.metrics().then((text) => response.writeHead(200, { "content-type": metricsRegistry.contentType }).end(text));
      return;
    }
    let status = 404;
    let body: Record<string, string> = { error: "not found" };
    if (path === "/healthz") {
      status = 200;
      body = { status: "ok" };
    } else if (path === "/readyz") {
      const ready = checks.ready();
      status = ready ? 200 : 503;
      body = { status: ready ? "ready" : "not ready" };
    }
    response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      resolve();
    });
  });
  const address = server.address();
  return {
    server,
    port: typeof address === "object" && address !== null ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
