import { defineConfig } from "vitest/config";

/** Tests that measure the browser's own timing (frames, paint) run after the rest, alone, on a machine not shared with a cluster under load. */
const TIMED_IN_BROWSER = ["test/integration/console.test.ts"];

export default defineConfig({
  test: {
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: more workers only fight over the CPU with nats-server.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: "main",
          include: ["test/**/*.test.ts", "shared/**/*.test.ts", "gateway/**/*.test.ts", "processors/**/*.test.ts"],
          exclude: TIMED_IN_BROWSER,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: "browser-timing", include: TIMED_IN_BROWSER, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
