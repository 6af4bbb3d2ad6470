/**
 * The layout's rules (README, "Layout"), checked by `npm run lint`: layers point one way, concepts do not
 * depend on what builds on them, processors do not depend on each other, and nothing imports in a circle.
 */
module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", comment: "An import cycle: one of the modules depends on what depends on it.", from: {}, to: { circular: true } },
    {
      name: "shared-stands-alone",
      severity: "error",
      comment: "shared/ is what every service builds on: it imports no service, deployment or test code.",
      from: { path: "^shared/" },
      to: { path: "^(gateway|processors|deploy|test)/" },
    },
    {
      name: "contract-is-the-bottom",
      severity: "error",
      comment: "The event contract (names, envelope, subjects, errors, payload schemas) depends on nothing else of ours.",
      from: { path: "^shared/contract/" },
      to: { path: "^shared/(nats|log|service)/" },
    },
    {
      name: "state-is-pure",
      severity: "error",
      comment: "The processors' reducers (shared/state) fold events into state and nothing else: the gateway, the console and the processors all run them.",
      from: { path: "^shared/state/" },
      to: { path: "^shared/(nats|log|service)/" },
    },
    {
      name: "console-talks-http",
      severity: "error",
      comment: "The browser console reaches the mesh over HTTP only; of our code it uses the contract, the reducers' types and the grant rules.",
      from: { path: "^gateway/console/src/" },
      to: { path: "^(gateway|processors|shared|deploy|test)/", pathNot: ["^gateway/console/src/", "^shared/contract/", "^shared/state/", "^gateway/auth/grants\\.ts$"] },
    },
    {
      name: "cli-talks-http",
      severity: "error",
      comment: "The agentmesh CLI reaches the mesh over HTTP only, like any client; of our code it uses the contract and the traces' derivation.",
      from: { path: "^gateway/cli/" },
      to: { path: "^(gateway|processors|shared|deploy|test)/", pathNot: ["^gateway/cli/", "^shared/contract/", "^shared/traces/"] },
    },
    {
      name: "traces-from-the-log-alone",
      severity: "error",
      comment: "The traces (shared/traces) are derived from events alone, so the processor and the CLI derive the same: of our code they use the contract.",
      from: { path: "^shared/traces/" },
      to: { path: "^shared/(nats|log|service|state)/" },
    },
    { name: "nats-below-log", severity: "error", comment: "NATS plumbing knows nothing of the log built on it.", from: { path: "^shared/nats/" }, to: { path: "^shared/log/" } },
    { name: "gateway-not-processors", severity: "error", comment: "The gateway and the processors meet only on NATS.", from: { path: "^gateway/" }, to: { path: "^processors/" } },
    { name: "processors-not-gateway", severity: "error", comment: "The gateway and the processors meet only on NATS.", from: { path: "^processors/" }, to: { path: "^gateway/" } },
    {
      name: "processors-apart",
      severity: "error",
      comment: "A processor uses the processor framework (processors/runtime) and shared/, never another processor.",
      from: { path: "^processors/([^/]+)/", pathNot: "^processors/runtime/" },
      to: { path: "^processors/([^/]+)/", pathNot: ["^processors/$1/", "^processors/runtime/"] },
    },
    { name: "runtime-not-a-processor", severity: "error", comment: "The framework depends on no processor built on it.", from: { path: "^processors/runtime/" }, to: { path: "^processors/", pathNot: "^processors/runtime/" } },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|\\.data)/|/dist/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".tsx", ".js"] },
  },
};
