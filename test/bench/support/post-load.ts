import autocannon, { type Result } from "autocannon";

export interface PostLoadOptions {
  url: string;
  contentType: string;
  body: string | Buffer;
  connections: number;
  seconds: number;
  /** Applied to the untimed run too: throws if the answers are not acceptable. */
  check?: (result: Result) => void;
}

/**
 * Closed-loop HTTP load with autocannon: keep-alive connections each POST the
 * same body as soon as their previous answer arrives. One untimed second runs
 * first, so the server's JIT is warm and the connections are open.
 */
export async function postLoad(options: PostLoadOptions): Promise<Result> {
  const run = (seconds: number): PromiseLike<Result> =>
    autocannon({
      url: options.url,
      method: "POST",
      headers: { "content-type": options.contentType },
      body: options.body,
      connections: options.connections,
      duration: seconds,
      timeout: 30,
    });
  options.check?.(await run(1));
  const result = await run(options.seconds);
  options.check?.(result);
  return result;
}
