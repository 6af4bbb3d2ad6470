import { styleText } from "node:util";
import type { EphemeralEnvelope, EventEnvelope } from "../../shared/contract/envelope.js";

/** Colour only for a person at a terminal: plain when piped, and never with NO_COLOR set. */
export function colourful(stream: NodeJS.WriteStream): boolean {
  return stream.isTTY && (process.env.NO_COLOR ?? "") === "";
}

type Style = Parameters<typeof styleText>[0];

export function paint(style: Style, text: string, stream: NodeJS.WriteStream = process.stdout): string {
  return colourful(stream) ? styleText(style, text) : text;
}

/** One event on one line: offset, time, type, the processor that wrote it, and the payload as JSON. */
export function eventLine(event: EventEnvelope | EphemeralEnvelope): string {
  const offset = "offset" in event ? String(event.offset).padStart(8) : paint("dim", "    live");
  const by = event.source === undefined ? "" : ` ${paint("magenta", event.source.processor)}`;
  const stored = "ephemeral" in event ? paint("dim", " (not stored)") : "";
  return `${offset} ${paint("dim", event.createdAt)} ${paint("bold", event.type)}${by}${stored} ${JSON.stringify(event.payload)}`;
}
