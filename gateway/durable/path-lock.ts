/**
 * Runs tasks for the same key one after another, tasks for different keys at
 * once. Within one gateway it makes validate-then-append on a stream atomic;
 * across replicas, JetStream's expected last sequence and the KV revision
 * check keep that true (a losing replica retries).
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
