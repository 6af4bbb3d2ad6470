import { useState } from "react";
import { Link, Route, Switch, useRoute } from "wouter";
import { useAccess } from "./api/access.js";
import { setToken, useToken } from "./api/token.js";
import { ProcessorsPage } from "./processors/ProcessorsPage.js";
import { StreamPage } from "./stream/StreamPage.js";
import { StreamTree } from "./streams/StreamTree.js";

function TokenBar() {
  const token = useToken();
  const [draft, setDraft] = useState("");
  return (
    <form
      className="token-bar"
      onSubmit={(e) => {
        e.preventDefault();
        setToken(draft);
        setDraft("");
      }}
    >
      {token === null ? null : <span className="muted small">token set for this tab</span>}
      <input type="password" aria-label="Token" placeholder="paste a bearer token" value={draft} onChange={(e) => { setDraft(e.target.value); }} autoComplete="off" />
      <button type="submit">Use token</button>
      {token === null ? null : (
        <button type="button" onClick={() => { setToken(null); }}>
          Forget token
        </button>
      )}
    </form>
  );
}

export function App() {
  const access = useAccess();
  const [onStream, params] = useRoute<{ "*": string }>("/streams/*");
  const current = onStream ? `/${params["*"]}` : null;
  return (
    <div className="app">
      <header className="top">
        <Link href="/" className="brand">
          agentmesh
        </Link>
        <Link href="/processors">Processors</Link>
        <span className="who" data-testid="who">
          {access.me === null ? "" : access.me.authEnabled ? `signed in as ${access.me.subject}` : "auth off: every right"}
        </span>
        <TokenBar />
      </header>
      {access.error === null ? null : (
        <p className="error banner" role="alert" data-testid="access-error">
          {access.error.plain}
        </p>
      )}
      <div className="body">
        <StreamTree current={current} />
        <main>
          <Switch>
            <Route path="/processors">
              <ProcessorsPage />
            </Route>
            <Route path="/streams/*">{(route: { "*": string }) => <StreamPage key={route["*"]} path={`/${route["*"]}`} access={access} />}</Route>
            <Route>
              <div className="welcome">
                <h2>Streams</h2>
                <p>Pick a stream on the left to watch it live, talk to an agent, inspect its model requests, or travel through its state.</p>
              </div>
            </Route>
          </Switch>
        </main>
      </div>
    </div>
  );
}
