import { useEffect, useState } from "react";
import { allows } from "../../../auth/grants.js";
import type { StreamPath } from "../../../../shared/contract/subjects.js";
import { api, ApiError } from "./client.js";
import { useToken } from "./token.js";
import type { Me, Right } from "./types.js";

export interface Access {
  me: Me | null;
  error: ApiError | null;
  /** What the token grants, decided by the gateway's own grant rules; the gateway still checks every request. */
  may: (right: Right, path: string) => boolean;
}

/** Who the pasted token is (`GET /me`), asked again whenever the token changes. */
export function useAccess(): Access {
  const token = useToken();
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    let live = true;
    api.me().then(
      (answer) => {
        if (!live) return;
        setMe(answer);
        setError(null);
      },
      (err: unknown) => {
        if (!live) return;
        setMe(null);
        setError(err instanceof ApiError ? err : new ApiError(0, "NETWORK", String(err)));
      },
    );
    return () => {
      live = false;
    };
  }, [token]);
  const may = (right: Right, path: string): boolean => me !== null && allows(me.grants, right, { kind: "stream", path: path as StreamPath });
  return { me, error, may };
}
