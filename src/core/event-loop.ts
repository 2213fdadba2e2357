/**
 * Lets timers and I/O run. TF.js' `data()` on the wasm and cpu backends resolves as a microtask, so a
 * training loop that only awaits it never gives the HTTP server (running in the same process) a turn;
 * long loops call this once per step or batch.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
