import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { BackendName } from '../config/config';
import { type Job, type JobKindName, type JobResult, jobKind } from './job-kinds';
import { type WorkerReady, type WorkerRequest, type WorkerResponse, type WorkerStartData, WorkerJobError, WorkerPoolError } from './protocol';
import type { WorkerStats } from './worker-ops';

export interface WorkerPoolOptions {
  /** Number of worker threads; default: the logical CPUs of this machine. */
  size?: number;
  /** TF.js backend every worker starts; default 'wasm' (one thread each under Node). */
  backend?: BackendName;
  /** How long a worker may take to load TF.js and its backend; default 120 s. */
  startTimeoutMs?: number;
}

interface Pending {
  op: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface PoolWorker {
  index: number;
  worker: Worker;
  pending: Map<number, Pending>;
  dead?: Error;
}

/**
 * The worker script. Compiled (dist) this module is .js and so is worker-main. Run from TypeScript
 * sources (ts-jest), the worker cannot load .ts by itself: it gets a small bootstrap that registers
 * a `require` hook transpiling .ts with the `typescript` package (a devDependency, present wherever
 * the sources are) and then requires worker-main.ts.
 */
function workerScript(): { script: string; eval: boolean } {
  const ext = path.extname(__filename);
  const entry = path.join(__dirname, `worker-main${ext}`);
  if (ext !== '.ts') return { script: entry, eval: false };
  const bootstrap = `
    const fs = require('node:fs');
    const ts = require(${JSON.stringify(require.resolve('typescript'))});
    const options = {
      module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true,
      experimentalDecorators: true, emitDecoratorMetadata: true, inlineSourceMap: true,
    };
    require.extensions['.ts'] = (module, filename) => {
      const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), { fileName: filename, compilerOptions: options });
      module._compile(out.outputText, filename);
    };
    require(${JSON.stringify(entry)});
  `;
  return { script: bootstrap, eval: true };
}

/**
 * N worker threads, each with its own TF.js on one backend, loaded once. Work is sent as requests
 * naming an operation of the workers' closed registry with data-only payloads; typed arrays are
 * structured-cloned (a memory copy) or transferred, never JSON-encoded. `close()` ends the threads.
 */
export class WorkerPool {
  private nextId = 1;
  private closed = false;

  private constructor(
    private readonly workers: PoolWorker[],
    readonly backend: string,
  ) {}

  /** Starts `size` workers and waits until every one has its backend running. */
  static async start(options: WorkerPoolOptions = {}): Promise<WorkerPool> {
    const size = options.size ?? (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
    if (!(Number.isInteger(size) && size >= 1)) throw new WorkerPoolError(`a worker pool needs a whole number of workers ≥ 1; got ${size}`);
    const backend = options.backend ?? 'wasm';
    const { script, eval: isEval } = workerScript();
    const timeoutMs = options.startTimeoutMs ?? 120_000;
    const started = await Promise.allSettled(
      Array.from({ length: size }, (_, index) => startWorker(index, script, isEval, { backend }, timeoutMs)),
    );
    const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failure = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failure !== undefined) {
      await Promise.all(workers.map((w) => w.worker.terminate()));
      throw failure.reason instanceof Error ? failure.reason : new WorkerPoolError(String(failure.reason));
    }
    const pool = new WorkerPool(workers, backend);
    workers.forEach((w) => pool.watch(w));
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  /** Sends one request to worker `index` and resolves with its result. */
  request<R>(index: number, op: string, payload: unknown, transfer: ArrayBuffer[] = []): Promise<R> {
    if (this.closed) return Promise.reject(new WorkerPoolError('the worker pool is closed'));
    const w = this.workers[index];
    if (w === undefined) return Promise.reject(new WorkerPoolError(`no worker ${index}; the pool has ${this.size}`));
    if (w.dead !== undefined) return Promise.reject(w.dead);
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      w.pending.set(id, { op, resolve: resolve as (v: unknown) => void, reject });
      try {
        w.worker.postMessage({ id, op, payload } satisfies WorkerRequest, transfer);
      } catch (err) {
        // A payload that cannot be cloned (a function, a class instance with private state...).
        w.pending.delete(id);
        reject(new WorkerPoolError(`the payload of ${op} cannot be sent to a worker (data only: numbers, strings, arrays, typed arrays): ${err instanceof Error ? err.message : String(err)}`));
      }
    });
  }

  /**
   * Runs independent jobs on the workers, each worker taking the next job when it finishes one;
   * results come back in job order. Kinds are checked against the registry before anything is sent.
   */
  async runInWorkers<K extends JobKindName>(jobs: readonly Job<K>[]): Promise<JobResult<K>[]> {
    for (const job of jobs) jobKind(job.kind);
    const results = new Array<JobResult<K>>(jobs.length);
    let next = 0;
    let failed = false;
    const drain = async (index: number) => {
      while (next < jobs.length && !failed) {
        const j = next++;
        try {
          results[j] = await this.request<JobResult<K>>(index, jobs[j].kind, jobs[j].payload);
        } catch (err) {
          failed = true; // the other workers take no new jobs
          throw err;
        }
      }
    };
    await Promise.all(this.workers.map((w) => drain(w.index)));
    return results;
  }

  /** Tensor counts of every worker's TF.js. */
  stats(): Promise<WorkerStats[]> {
    return Promise.all(this.workers.map((w) => this.request<WorkerStats>(w.index, 'stats', null)));
  }

  /** Ends every worker; pending requests are rejected. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new WorkerPoolError('the worker pool was closed while this request was pending');
    for (const w of this.workers) this.fail(w, error);
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }

  private watch(w: PoolWorker): void {
    w.worker.on('message', (message: WorkerResponse) => {
      const pending = w.pending.get(message.id);
      if (pending === undefined) return;
      w.pending.delete(message.id);
      if (message.ok) pending.resolve(message.result);
      else {
        const err = new WorkerJobError(pending.op, w.index, message.error.name, message.error.message);
        if (message.error.stack) err.stack = `${err.name}: ${err.message}\n-- in the worker --\n${message.error.stack}`;
        pending.reject(err);
      }
    });
    w.worker.on('error', (err) => this.fail(w, new WorkerPoolError(`worker ${w.index} failed: ${err.message}`)));
    w.worker.on('exit', (code) => {
      if (!this.closed) this.fail(w, new WorkerPoolError(`worker ${w.index} exited (code ${code})`));
    });
  }

  private fail(w: PoolWorker, error: Error): void {
    w.dead ??= error;
    for (const p of w.pending.values()) p.reject(error);
    w.pending.clear();
  }
}

function startWorker(index: number, script: string, isEval: boolean, data: WorkerStartData, timeoutMs: number): Promise<PoolWorker> {
  const worker = new Worker(script, { eval: isEval, workerData: data, stdout: false, stderr: false });
  return new Promise<PoolWorker>((resolve, reject) => {
    const fail = (err: Error) => {
      clearTimeout(timer);
      void worker.terminate();
      reject(err);
    };
    const timer = setTimeout(() => fail(new WorkerPoolError(`worker ${index} did not start its tensor backend within ${timeoutMs} ms`)), timeoutMs);
    worker.once('error', (err) => fail(new WorkerPoolError(`worker ${index} failed to start: ${err.message}`)));
    worker.once('exit', (code) => fail(new WorkerPoolError(`worker ${index} exited (code ${code}) before its backend started`)));
    worker.once('message', (ready: WorkerReady) => {
      clearTimeout(timer);
      worker.removeAllListeners('error');
      worker.removeAllListeners('exit');
      if (ready.ready) resolve({ index, worker, pending: new Map() });
      else {
        void worker.terminate();
        reject(new WorkerPoolError(`worker ${index} could not start backend '${data.backend}': ${ready.error.message}`));
      }
    });
  });
}
