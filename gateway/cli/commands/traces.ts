import type { EventEnvelope } from "../../../shared/contract/envelope.js";
import type { ReadPageBody } from "../../../shared/contract/http-bodies.js";
import { OtlpSpanExporter, tracesUrlOf } from "../../../shared/traces/otlp-export.js";
import { spansOfTurn } from "../../../shared/traces/turn-spans.js";
import { turnsOf } from "../../../shared/traces/turns.js";
import { call, CliError, streamUrl, type Target } from "../http.js";

export interface TracesExportOptions {
  endpoint?: string;
  print: boolean;
}

/** The whole stream, page after page, through the gateway with the person's token (the `read` right). */
async function history(target: Target, path: string): Promise<EventEnvelope[]> {
  const events: EventEnvelope[] = [];
  let after = 0;
  for (;;) {
    const page = await call<ReadPageBody>(target, "GET", `${streamUrl(path)}?after=${after}&limit=1000`);
    events.push(...page.events);
    if (page.upToDate || page.events.length === 0) return events;
    after = page.nextOffset;
  }
}

/**
 * `traces export <path>`: the stream's turns as OpenTelemetry traces, derived from its history exactly as the traces
 * processor derives them live (shared/traces), so the same stream gives the same traces and another path (a fork) its
 * own. Sent from this process to `--endpoint` or the standard `OTEL_EXPORTER_OTLP_*` variables; `--print` writes the
 * spans as JSON lines instead.
 */
export async function tracesExportCommand(target: Target, path: string, options: TracesExportOptions): Promise<void> {
  const turns = turnsOf(await history(target, path));
  const spans = turns.flatMap(spansOfTurn);
  if (options.print) {
    for (const span of spans) process.stdout.write(`${JSON.stringify(span)}\n`);
    return;
  }
  const url = options.endpoint === undefined ? tracesUrlOf(process.env) : tracesUrlOf({ OTEL_EXPORTER_OTLP_ENDPOINT: options.endpoint });
  const exporter = new OtlpSpanExporter(url, process.env);
  try {
    await exporter.export(spans);
  } catch (err) {
    throw new CliError("EXPORT_FAILED", err instanceof Error ? err.message : String(err));
  } finally {
    await exporter.shutdown();
  }
  process.stderr.write(`exported ${spans.length} spans of ${turns.length} turns to ${url}\n`);
}
