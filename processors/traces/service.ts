import type { ProcessorDeps } from "../runtime/run-processor.js";
import type { Processor } from "../runtime/runtime.js";
import { OtlpSpanExporter, tracesUrlOf } from "../../shared/traces/otlp-export.js";
import { loadTracesConfig } from "./config.js";
import { tracesProcessor, type TracesState } from "./processor.js";

/** Wires the traces processor to the OTLP/HTTP collector the standard variables name. */
export function buildTraces(deps: ProcessorDeps, env: NodeJS.ProcessEnv): Processor<TracesState> {
  loadTracesConfig(env);
  const exporter = new OtlpSpanExporter(tracesUrlOf(env), env);
  deps.onStop(() => exporter.shutdown());
  deps.logger.info({ url: exporter.url }, "exporting traces over OTLP/HTTP");
  return tracesProcessor({ exporter });
}
