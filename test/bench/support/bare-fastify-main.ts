import Fastify from "fastify";

/**
 * Child-process entry for the benchmark's HTTP ceiling: a Fastify server
 * that does for `POST /streams/*` only what any JSON endpoint must (parse
 * the body, answer 201 with an envelope-sized JSON reply) and stores
 * nothing. Its rate under the same load as the gateway's single appends is
 * the most that one Node HTTP process can answer on this machine, beside
 * the same load generator. Once listening it prints one JSON line
 * `{"url": ...}` on stdout; SIGTERM stops it.
 */

interface EventInput {
  type?: unknown;
  payload?: unknown;
}

const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
let offset = 0;
app.post<{ Body: EventInput; Params: { "*": string } }>("/streams/*", async (request, reply) => {
  offset += 1;
  const { type, payload } = request.body;
  reply.code(201);
  return { streamPath: `/${request.params["*"]}`, offset, type, payload, createdAt: new Date().toISOString() };
});

const url = await app.listen({ host: "127.0.0.1", port: 0 });
process.stdout.write(`${JSON.stringify({ url })}\n`);

process.once("SIGTERM", () => {
  void app.close().finally(() => process.exit(0));
});
