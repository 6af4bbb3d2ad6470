import { useSyncExternalStore } from "react";

/**
 * The bearer token a person pasted: kept in sessionStorage, so it lives as long as the tab and never reaches
 * disk beyond the browser's session, nor another tab.
 */
const KEY = "agentmesh.token";
const listeners = new Set<() => void>();

export function currentToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(token: string | null): void {
  if (token === null || token.trim() === "") sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, token.trim());
  for (const listener of listeners) listener();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function useToken(): string | null {
  return useSyncExternalStore(subscribe, currentToken);
}
