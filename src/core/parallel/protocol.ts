/**
 * Messages between the main thread and Condense's tensor workers. A request names an operation of
 * the worker's closed registry (see worker-handlers.ts) and carries data only: numbers, strings and
 * typed arrays (moved by transfer or shared through a SharedArrayBuffer, never JSON-encoded).
 */

export interface WorkerRequest {
  id: number;
  op: string;
  payload: unknown;
}

export type WorkerResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { name: string; message: string; stack?: string } };

/** Sent once by a worker when TF.js and its backend are ready (or could not start). */
export type WorkerReady = { ready: true; backend: string; detail: string } | { ready: false; error: { name: string; message: string } };

/** Data every worker gets at start-up (`workerData`). */
export interface WorkerStartData {
  backend: string;
}

/** A job or operation failed inside a worker; the message is the worker's own error message. */
export class WorkerJobError extends Error {
  constructor(
    readonly op: string,
    readonly workerIndex: number,
    readonly causeName: string,
    message: string,
  ) {
    super(`worker ${workerIndex}, ${op}: ${message}`);
    this.name = 'WorkerJobError';
  }
}

/** A worker could not start, died, or the pool was closed while work was pending. */
export class WorkerPoolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerPoolError';
  }
}

/** A job named a kind, or an operation, that the closed registry does not hold. */
export class UnknownJobKindError extends Error {
  constructor(kind: string, known: readonly string[]) {
    super(`unknown job kind "${kind}"; the registered kinds are ${known.join(', ')}`);
    this.name = 'UnknownJobKindError';
  }
}

/** The ArrayBuffers of typed arrays, for a transfer list (a shared or repeated buffer is listed once). */
export function transferablesOf(...arrays: (ArrayBufferView | undefined)[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const a of arrays) {
    if (a !== undefined && a.buffer instanceof ArrayBuffer) out.add(a.buffer);
  }
  return [...out];
}
