/**
 * Progress lines go to stderr and the final table to stdout, so
 * `npm run bench > results.txt` keeps only the results while the run stays
 * visible on the terminal.
 */
const started = performance.now();

export function progress(message: string): void {
  const seconds = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${seconds}s] ${message}\n`);
}

export function print(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}
