import "./zod-jitless.js";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Router } from "wouter";
import { App } from "./App.js";
import "./console.css";

const root = document.getElementById("root");
if (root === null) throw new Error("The console page has no #root element");
createRoot(root).render(
  <StrictMode>
    <Router base="/console">
      <App />
    </Router>
  </StrictMode>,
);
