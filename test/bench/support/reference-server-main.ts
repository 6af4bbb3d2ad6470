import { DurableStreamTestServer } from "@durable-streams/server";

/**
 * Child-process entry for the Durable Streams reference server
 * (`@durable-streams/server`), file-backed in `DS_DATA_DIR`, on a port the OS
 * picks. It runs in its own process, as the gateway does, so that neither
 * server shares an event loop or a core's time slice with the load generator.
 * Once listening it prints one JSON line `{"url": ...}` on stdout; SIGTERM
 * stops it.
 */

const dataDir = process.env.DS_DATA_DIR;
if (dataDir === undefined || dataDir === "") throw new Error("DS_DATA_DIR must name the reference server's data folder");

const server = new DurableStreamTestServer({ host: "127.0.0.1", port: 0, dataDir });
const url = await server.start();
process.stdout.write(`${JSON.stringify({ url })}\n`);

process.once("SIGTERM", () => {
  void server.stop().finally(() => process.exit(0));
});
