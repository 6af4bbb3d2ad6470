import { Command, Option } from "commander";
import { appendCommand, listCommand, pauseCommand, resumeCommand, stateCommand } from "./commands/streams.js";
import { chatCommand } from "./commands/chat.js";
import { tailCommand, type TailOptions } from "./commands/tail.js";
import { forkCommand, type ForkOptions } from "./commands/fork.js";
import { tracesExportCommand, type TracesExportOptions } from "./commands/traces.js";
import { processorsListCommand, processorsRewindCommand } from "./commands/processors.js";
import { paint } from "./format.js";
import { CliError, type Target } from "./http.js";

/**
 * `agentmesh`: the mesh from a terminal, over the gateway's HTTP API only (what a person may do is what their
 * token grants). Errors are the gateway's codes; the exit status is 1 on any error, 2 for bad arguments.
 */
const program = new Command("agentmesh")
  .description("See and drive agentmesh streams from a terminal")
  .addOption(new Option("--url <url>", "the gateway's URL").env("AGENTMESH_URL").default("http://localhost:8080"))
  .addOption(new Option("--token <token>", "a bearer token").env("AGENTMESH_TOKEN"))
  .showHelpAfterError()
  .exitOverride();

function target(): Target {
  const options = program.opts<{ url: string; token?: string }>();
  return { url: options.url, token: options.token };
}

const stop = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => { stop.abort(); });

program
  .command("ls")
  .description("streams with their event counts and last offsets")
  .argument("[prefix]", "only this stream and those below it")
  .option("--json", "one stream per line as JSON", false)
  .action((prefix: string | undefined, options: { json: boolean }) => listCommand(target(), prefix, options));

program
  .command("tail")
  .description("what is stored, then live; resumes after a disconnect without gaps or repeats")
  .argument("<selector>", "a stream path, or <prefix>/** for a subtree")
  .option("--after <offset>", "start after this offset")
  .option("--at <time>", "start at the first event stored at or after this time (ISO 8601)")
  // Repeatable rather than variadic: a variadic option would swallow the selector written after it.
  .option("--type <glob>", "only events of this type (agent/*, stream/**); repeat for more", (glob: string, globs: string[]) => [...globs, glob], [] as string[])
  .option("--no-follow", "print what is stored and exit")
  .option("--json", "one event per line as JSON (for jq)", false)
  .action((selector: string, options: TailOptions) => tailCommand(target(), selector, options, stop.signal));

program
  .command("append")
  .description("append an event and print it as stored")
  .argument("<path>", "the stream")
  .argument("<type>", "the event type")
  .argument("[payload]", "the payload as JSON, or - to read it from stdin")
  .option("--json", "print the stored event as JSON", false)
  .action((path: string, type: string, payload: string | undefined, options: { json: boolean }) => appendCommand(target(), path, type, payload, options));

program
  .command("chat")
  .description("talk to an agent: the answer streams in token by token")
  .argument("<path>", "the agent's stream")
  .action((path: string) => chatCommand(target(), path, stop.signal));

program
  .command("state")
  .description("each processor's state of a stream right after an offset (default: now)")
  .argument("<path>", "the stream")
  .option("--processor <name>", "llm, breaker, scheduler or webhook-pusher")
  .option("--at <offset>", "right after this offset")
  .action((path: string, options: { processor?: string; at?: string }) => stateCommand(target(), path, options));

program
  .command("pause")
  .description("pause a stream: appends and reactions stop until it is resumed")
  .argument("<path>", "the stream")
  .option("--reason <text>", "why", "paused from the CLI")
  .action((path: string, options: { reason: string }) => pauseCommand(target(), path, options));

program
  .command("resume")
  .description("resume a paused stream")
  .argument("<path>", "the stream")
  .option("--reason <text>", "why", "resumed from the CLI")
  .action((path: string, options: { reason: string }) => resumeCommand(target(), path, options));

program
  .command("fork")
  .description("a new agent whose history is this one's up to and including an event; re-run from there with new input or configuration")
  .argument("<path>", "the stream to fork")
  .requiredOption("--at <offset>", "the last event the fork inherits")
  .requiredOption("--to <path>", "the new stream (it must not exist)")
  .option("--subscriptions", "the source's webhook subscriptions deliver the fork's events too (needs admin on the source and the fork)", false)
  .option("--json", "print the gateway's answer as JSON", false)
  .action((path: string, options: ForkOptions) => forkCommand(target(), path, options));

program
  .command("traces")
  .description("the stream's agent turns as OpenTelemetry traces")
  .command("export")
  .description("derive the turns' traces from the stream's history and send them over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT)")
  .argument("<path>", "the stream")
  .option("--endpoint <url>", "the collector's OTLP/HTTP base URL (/v1/traces is appended)")
  .option("--print", "print the spans as JSON lines instead of sending them", false)
  .action((path: string, options: TracesExportOptions) => tracesExportCommand(target(), path, options));

const processors = program
  .command("processors")
  .description("the processors' consumers (as `processors ls`); rewind one")
  .action(() => processorsListCommand(target(), { json: false }));
processors
  .command("ls")
  .description("each processor's and webhook subscription's consumer: pending, unacknowledged, ack floor, pulling")
  .option("--json", "one consumer per line as JSON", false)
  .action((options: { json: boolean }) => processorsListCommand(target(), options));
processors
  .command("rewind")
  .description("move a processor's consumer back: it considers every event from there again (what it already reacted to is recognised)")
  .argument("<name>", "the processor, as `processors ls` names it")
  .requiredOption("--to <offset|time>", "an offset, or an RFC 3339 time (the first event stored at or after it)")
  .option("--json", "print the gateway's answer as JSON", false)
  .action((name: string, options: { to: string; json: boolean }) => processorsRewindCommand(target(), name, options));

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CliError) {
    process.stderr.write(`${paint("red", `agentmesh: ${err.code}: ${err.message}`, process.stderr)}\n`);
    process.exitCode = err.code === "BAD_ARGUMENTS" ? 2 : 1;
  } else if (err instanceof Error && "exitCode" in err && typeof err.exitCode === "number") {
    // commander has printed the help or the usage error itself.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    process.stderr.write(`agentmesh: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
