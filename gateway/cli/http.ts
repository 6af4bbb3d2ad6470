/**
 * The CLI's HTTP client: the gateway's URL and token (flags, or AGENTMESH_URL and AGENTMESH_TOKEN), JSON in and
 * out, and the gateway's error codes kept for the message a person reads.
 */
export interface Target {
  url: string;
  token: string | undefined;
}

export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 0,
  ) {
    super(message);
  }
}

export function headers(target: Target, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(target.token === undefined || target.token === "" ? {} : { authorization: `Bearer ${target.token}` }), ...extra };
}

/** The gateway's `{error: {code, message}}` as a CliError; any other failure with its HTTP status. */
export async function errorOf(response: Response): Promise<CliError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error?.code !== undefined) return new CliError(body.error.code, body.error.message ?? "", response.status);
  } catch {
    // Not the gateway's error body: the status says what it can.
  }
  return new CliError(`HTTP_${response.status}`, text.slice(0, 200) || response.statusText, response.status);
}

export async function call<T>(target: Target, method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(new URL(path, target.url), {
      method,
      headers: headers(target, body === undefined ? { accept: "application/json" } : { accept: "application/json", "content-type": "application/json" }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (err) {
    throw new CliError("UNREACHABLE", `cannot reach the gateway at ${target.url}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`);
  }
  if (!response.ok) throw await errorOf(response);
  return (await response.json()) as T;
}

/** `/streams/a/b`: stream paths are URL-unreserved characters, so they go into the URL as they are. */
export function streamUrl(path: string, suffix = ""): string {
  const normal = path.startsWith("/") ? path : `/${path}`;
  return `/streams${normal}${suffix}`;
}
