import { runConformanceTests } from "@durable-streams/server-conformance-tests";
import { afterAll, beforeAll } from "vitest";
import { startGateway, type TestGateway } from "../support/gateway.js";

/**
 * The published Durable Streams conformance suite (pinned in package.json),
 * run against a real gateway on a real nats-server. `npm run test:conformance`.
 */

const LONG_POLL_TIMEOUT_MS = 1000;
const target = { baseUrl: "", longPollTimeoutMs: LONG_POLL_TIMEOUT_MS, subscriptions: true };
let gateway: TestGateway | undefined;

beforeAll(async () => {
  gateway = await startGateway({
    DURABLE_LONG_POLL_TIMEOUT_MS: String(LONG_POLL_TIMEOUT_MS),
    // The suite's webhook receivers listen on loopback.
    DURABLE_SUBSCRIPTIONS: "on",
    DURABLE_WEBHOOK_ALLOWED_NETWORKS: "loopback",
  });
  target.baseUrl = gateway.url;
});

afterAll(async () => {
  await gateway?.close();
});

// The suite reads baseUrl when each test runs, so it can be filled in by beforeAll.
runConformanceTests(target);
