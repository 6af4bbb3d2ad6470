import { useEffect, useState } from "react";
import { ApiError } from "../api/client.js";

/**
 * Asks the gateway now and then every `ms` while the view is open, again from scratch when `deps` change; an
 * answer that arrives after the view moved on is dropped. Errors are what a person is told (ApiError.plain).
 */
export function usePolling<T>(load: () => Promise<T>, ms: number, deps: readonly unknown[]): { value: T | null; error: string | null } {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const view = { open: true };
    const poll = async (): Promise<void> => {
      try {
        const answer = await load();
        if (!view.open) return;
        setValue(answer);
        setError(null);
      } catch (err) {
        if (view.open) setError(err instanceof ApiError ? err.plain : String(err));
      }
    };
    void poll();
    const timer = setInterval(() => void poll(), ms);
    return () => {
      view.open = false;
      clearInterval(timer);
    };
    // The caller names what the load depends on.
  }, deps);
  return { value, error };
}
