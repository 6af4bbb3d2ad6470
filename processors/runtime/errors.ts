/**
 * How a processor tells the runtime what to do with an event it failed on:
 * a TerminalError ends redelivery at once (recorded as stream/error-occurred),
 * a RetryableError asks for another try after a delay, and anything else is
 * retried with backoff until the delivery limit, then treated as terminal.
 */
export class TerminalError extends Error {
  override readonly name = "TerminalError";
}

export class RetryableError extends Error {
  override readonly name = "RetryableError";

  constructor(
    message: string,
    readonly delayMs: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
