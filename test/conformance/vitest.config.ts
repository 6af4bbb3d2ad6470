import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/conformance/*.conformance.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
