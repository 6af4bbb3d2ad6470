import type { ProcessorRewindRequest, ProcessorRewoundBody, ProcessorsBody } from "../../../shared/contract/http-bodies.js";
import { paint } from "../format.js";
import { call, CliError, type Target } from "../http.js";

/** `processors` / `processors ls`: each processor's and webhook subscription's consumer, as `GET /processors` says. */
export async function processorsListCommand(target: Target, options: { json: boolean }): Promise<void> {
  const { processors } = await call<ProcessorsBody>(target, "GET", "/processors");
  if (options.json) {
    for (const row of processors) process.stdout.write(`${JSON.stringify(row)}\n`);
    return;
  }
  if (processors.length === 0) {
    process.stderr.write("no processors\n");
    return;
  }
  const width = Math.max(...processors.map((row) => row.name.length), 4);
  process.stdout.write(`${paint("dim", `${"NAME".padEnd(width)}  ${"KIND".padEnd(20)}  ${"PENDING".padStart(8)}  ${"UNACKED".padStart(8)}  ${"ACK FLOOR".padStart(10)}  PULLING`)}\n`);
  for (const row of processors) {
    const pulling = row.healthy ? paint("green", "yes") : paint("red", "no");
    process.stdout.write(`${row.name.padEnd(width)}  ${row.kind.padEnd(20)}  ${String(row.pending).padStart(8)}  ${String(row.ackPending).padStart(8)}  ${String(row.ackFloor).padStart(10)}  ${pulling}\n`);
  }
}

/** `--to`: digits are an offset, anything else a time the gateway checks (RFC 3339). */
function rewindTarget(to: string): ProcessorRewindRequest["to"] {
  if (to.trim() === "") throw new CliError("BAD_ARGUMENTS", "--to needs an offset or an RFC 3339 time");
  return /^\d+$/.test(to) ? Number(to) : to;
}

/** `processors rewind <name> --to <offset|time>`: the processor considers every event from there again. */
export async function processorsRewindCommand(target: Target, name: string, options: { to: string; json: boolean }): Promise<void> {
  const rewound = await call<ProcessorRewoundBody>(target, "POST", `/processors/${encodeURIComponent(name)}/rewind`, { to: rewindTarget(options.to) } satisfies ProcessorRewindRequest);
  if (options.json) {
    process.stdout.write(`${JSON.stringify(rewound)}\n`);
    return;
  }
  const { before } = rewound;
  process.stdout.write(
    `${paint("bold", rewound.processor)} rewound: it starts again at offset ${rewound.start} (it had handled everything up to ${before.ackFloor}, delivered up to ${before.delivered}); ${rewound.pending} events to consider again\n`,
  );
}
