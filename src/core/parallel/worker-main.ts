/**
 * Entry of a Condense tensor worker (node:worker_threads). Starts TF.js on the backend the pool asks
 * for (with Condense's kernels, as the main thread does), says it is ready, then runs requests one
 * at a time, in the order they arrive, from the closed registry in worker-ops.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { BackendName } from '../config/config';
import { initTensorBackend } from '../tensors/backend';
import type { WorkerReady, WorkerRequest, WorkerResponse, WorkerStartData } from './protocol';
import { UnknownJobKindError } from './protocol';
import { WORKER_OPS, newWorkerContext } from './worker-ops';

function errorOf(err: unknown): { name: string; message: string; stack?: string } {
  if (err instanceof Error) return { name: err.name, message: err.message, stack: err.stack };
  return { name: 'Error', message: String(err) };
}

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('worker-main must run inside a worker thread');
  const start = workerData as WorkerStartData;
  try {
    const info = await initTensorBackend(start.backend as BackendName);
    port.postMessage({ ready: true, backend: info.name, detail: info.detail } satisfies WorkerReady);
  } catch (err) {
    port.postMessage({ ready: false, error: errorOf(err) } satisfies WorkerReady);
    return;
  }
  const context = newWorkerContext();
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (request: WorkerRequest) => {
    queue = queue.then(async () => {
      let response: WorkerResponse;
      let transfer: ArrayBuffer[] = [];
      try {
        const op = WORKER_OPS[request.op];
        if (op === undefined || !Object.hasOwn(WORKER_OPS, request.op)) throw new UnknownJobKindError(request.op, Object.keys(WORKER_OPS));
        const output = await op(request.payload, context);
        response = { id: request.id, ok: true, result: output.result };
        transfer = output.transfer ?? [];
      } catch (err) {
        response = { id: request.id, ok: false, error: errorOf(err) };
      }
      port.postMessage(response, transfer);
    });
  });
}

void main();
