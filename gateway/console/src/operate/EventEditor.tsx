import { useMemo, useState } from "react";
import { z } from "zod";
import { KnownPayloadSchemas } from "../../../../shared/contract/events/catalog.js";
import { api, ApiError } from "../api/client.js";

const TEMPLATES: Record<string, unknown> = {
  "agent/input-added": { role: "user", content: "Hello", trigger: "auto" },
  "agent/configured": { systemPrompt: "You are helpful." },
  "stream/paused": { reason: "paused by hand" },
  "schedule/cancelled": { slug: "every-minute" },
  "subscription/removed": { slug: "my-hook" },
  "schedule/added": { slug: "every-minute", schedule: { kind: "every", seconds: 60 }, append: { type: "agent/input-added", payload: { role: "user", content: "tick" } } },
  "stream/circuit-breaker-configured": { maxEventsPerSecond: 50, burst: 100 },
};

type Check = { ok: true; payload: unknown } | { ok: false; problem: string };

/** Append any event: its payload is checked against the known schema of its type (shared/contract) before it is sent. */
export function EventEditor(props: { path: string }) {
  const [type, setType] = useState("agent/input-added");
  const [text, setText] = useState(JSON.stringify(TEMPLATES["agent/input-added"], null, 2));
  const [result, setResult] = useState<string | null>(null);
  const check = useMemo((): Check => {
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch (err) {
      return { ok: false, problem: `Not JSON: ${err instanceof Error ? err.message : String(err)}` };
    }
    const known = KnownPayloadSchemas[type];
    if (known === undefined) return { ok: true, payload };
    // Strict here: a misspelt field is a mistake a person wants to hear of, though readers ignore unknown fields.
    const schema = known instanceof z.ZodObject ? known.strict() : known;
    const parsed = schema.safeParse(payload);
    if (parsed.success) return { ok: true, payload };
    return { ok: false, problem: parsed.error.issues.map((issue) => `${issue.path.join(".") || "payload"}: ${issue.message}`).join("; ") };
  }, [type, text]);

  const append = async (): Promise<void> => {
    if (!check.ok) return;
    setResult(null);
    try {
      const stored = await api.append(props.path, { type, payload: check.payload });
      setResult(`Stored at offset ${stored.offset}`);
    } catch (err) {
      setResult(err instanceof ApiError ? err.plain : String(err));
    }
  };

  return (
    <section className="editor" aria-label="Append an event">
      <h3>Append an event</h3>
      <label htmlFor="editor-type">Type</label>
      <input
        id="editor-type"
        list="known-types"
        value={type}
        onChange={(e) => {
          const next = e.target.value;
          setType(next);
          // Another known type starts from its own template (or an empty payload), never the last type's.
          const template = TEMPLATES[next] ?? (KnownPayloadSchemas[next] === undefined ? undefined : {});
          if (template !== undefined) setText(JSON.stringify(template, null, 2));
        }}
      />
      <datalist id="known-types">
        {Object.keys(KnownPayloadSchemas).map((known) => (
          <option key={known} value={known} />
        ))}
      </datalist>
      <label htmlFor="editor-payload">Payload (JSON)</label>
      <textarea id="editor-payload" rows={8} value={text} onChange={(e) => { setText(e.target.value); }} spellCheck={false} />
      <p className={check.ok ? "muted small" : "error small"} role="status">
        {check.ok ? (KnownPayloadSchemas[type] === undefined ? "A type of your own: any JSON payload." : `Valid ${type}.`) : check.problem}
      </p>
      <button type="button" disabled={!check.ok} onClick={() => void append()}>
        Append
      </button>
      {result === null ? null : <p role="status">{result}</p>}
    </section>
  );
}
