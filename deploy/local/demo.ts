/**
 * `npm run demo`: the whole mesh, each service its own process (gateway,
 * breaker, scheduler, webhook pusher, LLM, the Go and the Python processors),
 * against a scripted OpenAI-compatible model server, driving one conversation
 * that uses a Go tool and a Python tool, printing the event log as it grows.
 */
import { DEMO_QUESTION, runDemo } from "./demo-run.js";

function summary(payload: unknown): string {
  const text = JSON.stringify(payload);
  return text.length > 140 ? `${text.slice(0, 137)}...` : text;
}

const port = Number(process.env.GATEWAY_PORT ?? "8080");
const stop = new AbortController();
// Stop the mesh's processes with us: they run in their own process groups.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => { stop.abort(); });
process.stdout.write(`agentmesh demo: gateway on http://127.0.0.1:${port}, asking "${DEMO_QUESTION}"\n\n`);
runDemo({
  gatewayPort: port,
  signal: stop.signal,
  onEvent: (event) => {
    const by = event.source === undefined ? "client" : event.source.processor;
    process.stdout.write(`${String(event.offset).padStart(6)}  ${event.type.padEnd(28)} ${by.padEnd(12)} ${summary(event.payload)}\n`);
  },
  onLine: (service, line) => {
    if (process.env.DEMO_VERBOSE === "1") process.stdout.write(`  [${service}] ${line}\n`);
  },
})
  .then(({ answer }) => {
    process.stdout.write(`\nanswer: ${answer}\n`);
    process.exit(0);
  })
  .catch((err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
