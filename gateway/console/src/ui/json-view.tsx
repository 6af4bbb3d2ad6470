import { useState } from "react";
import { defaultStyles, JsonView } from "react-json-view-lite";
import "react-json-view-lite/dist/index.css";

/** A JSON value pretty and collapsible (nested levels start folded past `depth`), with a raw toggle. */
export function JsonPanel({ value, depth = 2, label }: { value: unknown; depth?: number; label?: string }) {
  const [raw, setRaw] = useState(false);
  const data = typeof value === "object" && value !== null ? value : { value };
  return (
    <div className="json-panel">
      <div className="json-panel-bar">
        {label === undefined ? null : <span className="muted">{label}</span>}
        <button type="button" className="link" onClick={() => { setRaw(!raw); }} aria-pressed={raw}>
          {raw ? "Pretty" : "Raw"}
        </button>
      </div>
      {raw ? <pre className="raw-json">{JSON.stringify(value, null, 2)}</pre> : <JsonView data={data} shouldExpandNode={(level) => level < depth} style={defaultStyles} />}
    </div>
  );
}
