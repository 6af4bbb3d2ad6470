import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type TestGateway } from "../support/gateway.js";

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  await gw.close();
});

describe("OpenAPI", () => {
  it("serves a document generated from the zod schemas at /docs/json, and a UI at /docs", async () => {
    const doc = (await (await fetch(`${gw.url}/docs/json`)).json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: unknown; summary?: string }>> };
    expect(doc.openapi).toMatch(/^3\./);
    const append = Object.entries(doc.paths).find(([path]) => path.startsWith("/streams/"))?.[1]?.post;
    expect(append?.summary).toContain("Append");
    expect(JSON.stringify(append?.requestBody)).toContain("idempotencyKey");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/streams", "/healthz"]));
    const ui = await fetch(`${gw.url}/docs`, { redirect: "follow" });
    expect(ui.status).toBe(200);
    expect(ui.headers.get("content-type")).toContain("text/html");
  });
});
