import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api/client.js";

/** What the llm state view says of an agent's spending and tools (shared/state/views.ts). */
interface AgentFacts {
  usage?: { promptTokens: number; completionTokens: number; costUsd: number };
  budget?: { maxTokens?: number; maxCostUsd?: number } | null;
  tools?: { name: string }[];
  mcpServers?: { name: string; tools: number; error: string | null }[];
}

/** The state is folded again at most this often while events arrive: a fold reads the whole stream. */
const REFRESH_MS = 2_000;

function money(usd: number): string {
  return `$${usd < 0.01 && usd > 0 ? usd.toFixed(6) : usd.toFixed(2)}`;
}

/**
 * The agent's usage against its budget, and the tools its model is offered (its MCP servers' included, with the
 * reason a server has none), folded by the gateway from the whole log, not only the loaded history.
 */
export function AgentSummary(props: { path: string; version: number }) {
  const [facts, setFacts] = useState<AgentFacts | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [asked, setAsked] = useState(props.version);
  // At most one fold per REFRESH_MS however fast events arrive: the newest version is asked for when the time comes.
  const latest = useRef(props.version);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  latest.current = props.version;
  useEffect(() => {
    pending.current ??= setTimeout(() => {
      pending.current = null;
      setAsked(latest.current);
    }, REFRESH_MS);
  }, [props.version]);
  useEffect(
    () => () => {
      if (pending.current !== null) clearTimeout(pending.current);
    },
    [],
  );

  useEffect(() => {
    let live = true;
    api.state(props.path, null, "llm").then(
      (answer) => {
        if (!live) return;
        setFacts((answer.processors.llm?.state ?? null));
        setError(null);
      },
      (err: unknown) => {
        if (live) setError(err instanceof ApiError ? err.plain : String(err));
      },
    );
    return () => {
      live = false;
    };
  }, [props.path, asked]);

  if (error !== null) return <p className="muted agent-summary">Usage unavailable: {error}</p>;
  if (facts === null) return null;
  const usage = facts.usage ?? { promptTokens: 0, completionTokens: 0, costUsd: 0 };
  const budget = facts.budget ?? null;
  const tokens = usage.promptTokens + usage.completionTokens;
  return (
    <div className="agent-summary" aria-label="Usage and tools">
      <span data-testid="usage">
        {tokens} tokens ({usage.promptTokens} in, {usage.completionTokens} out) · {money(usage.costUsd)}
        {budget === null ? "" : ` · budget ${budget.maxTokens === undefined ? "" : `${budget.maxTokens} tokens`}${budget.maxTokens !== undefined && budget.maxCostUsd !== undefined ? ", " : ""}${budget.maxCostUsd === undefined ? "" : money(budget.maxCostUsd)}`}
      </span>
      {(facts.tools ?? []).length === 0 ? null : (
        <span data-testid="tools" title={(facts.tools ?? []).map((t) => t.name).join("\n")}>
          {" "}
          · {(facts.tools ?? []).length} tools
        </span>
      )}
      {(facts.mcpServers ?? []).map((server) => (
        <span key={server.name} className={server.error === null ? "" : "error"} title={server.error ?? `${server.tools} tools`}>
          {" "}
          · MCP {server.name}: {server.error === null ? `${server.tools} tools` : "unreachable"}
        </span>
      ))}
    </div>
  );
}
