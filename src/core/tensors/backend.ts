import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendName } from '../config/config';
import type { Logger } from '../logging/logger';
import { registerFastBatchNorm } from './batch-norm-training';
import { registerPrunedGradientConv2D } from './conv2d-layer';
import { registerBroadcastGradients } from './broadcast-gradients';
import { registerWasmTrainingKernels } from './wasm-kernels';
import { registerWebgpuKernels, watchWebgpuErrors, webgpuErrorCount, webgpuErrors } from './webgpu-kernels';

export interface TensorBackendInfo {
  name: BackendName;
  /** What runs underneath, in words (package, adapter, SIMD...). */
  detail: string;
  tfjsVersion: string;
  threads: number;
}

/** A backend that was asked for by name and cannot start. */
export class BackendUnavailableError extends Error {
  constructor(
    readonly backend: BackendName,
    reason: string,
  ) {
    super(`tensor backend '${backend}' was requested (CONDENSE_BACKEND or --backend) but cannot start: ${reason}`);
  }
}

/** The GPU reported errors (a dropped command buffer): the numbers computed since are not to be trusted. */
export class TensorDeviceError extends Error {
  constructor(readonly errors: string[]) {
    super(`the GPU device reported ${errors.length} error(s); results computed since are invalid: ${errors.slice(0, 3).join('; ')}`);
    this.name = 'TensorDeviceError';
  }
}

let errorsSeen = 0;

/** Throws TensorDeviceError when the GPU reported an error since the last call (no-op on CPU backends). */
export function throwIfDeviceErrors(): void {
  const count = webgpuErrorCount();
  if (count === errorsSeen) return;
  const fresh = webgpuErrors().slice(errorsSeen);
  errorsSeen = count;
  throw new TensorDeviceError(fresh);
}

/** Why a backend could not be used; undefined reason means it started. */
type Attempt = { info: TensorBackendInfo } | { reason: string };

const ORDER: readonly BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];

let current: TensorBackendInfo | undefined;
let pending: Promise<TensorBackendInfo> | undefined;

/** The backend chosen by `initTensorBackend`, or undefined before it ran. */
export function currentBackendInfo(): TensorBackendInfo | undefined {
  return current;
}

/**
 * Chooses and starts the tensor backend once per process: `preferred` when given (an error when it
 * cannot start), else the first of tensorflow, webgpu, wasm, cpu that starts. Later calls return
 * the same info; a later call naming a different backend is an error.
 */
export async function initTensorBackend(preferred?: BackendName, log?: Logger): Promise<TensorBackendInfo> {
  if (pending === undefined) {
    pending = chooseBackend(preferred, log).then(
      (info) => {
        current = info;
        return info;
      },
      (err: unknown) => {
        pending = undefined;
        throw err;
      },
    );
  }
  const info = await pending;
  if (preferred !== undefined && preferred !== info.name) {
    throw new BackendUnavailableError(preferred, `this process already runs tensors on '${info.name}'`);
  }
  return info;
}

async function chooseBackend(preferred: BackendName | undefined, log: Logger | undefined): Promise<TensorBackendInfo> {
  // Backend-independent: tfjs-core's FusedBatchNorm/Mean/Sum gradients tile or upload full-size helpers,
  // training-mode BatchNorm layers differentiate through five ops instead of one closed form, and
  // tfjs-layers' Conv2D computes its input gradient even for the images.
  registerBroadcastGradients(log);
  registerFastBatchNorm(log);
  registerPrunedGradientConv2D(log);
  if (preferred !== undefined) {
    const attempt = await tryBackend(preferred, log);
    if ('reason' in attempt) throw new BackendUnavailableError(preferred, attempt.reason);
    log?.info(attempt.info, 'tensor backend started (forced)');
    return attempt.info;
  }
  for (const name of ORDER) {
    const attempt = await tryBackend(name, log);
    if ('info' in attempt) {
      log?.info(attempt.info, 'tensor backend started');
      return attempt.info;
    }
    log?.debug({ backend: name, reason: attempt.reason }, 'tensor backend not available');
  }
  throw new Error('no tensor backend could start, not even cpu');
}

async function tryBackend(name: BackendName, log: Logger | undefined): Promise<Attempt> {
  try {
    switch (name) {
      case 'tensorflow':
        return await tryTensorflow();
      case 'webgpu':
        return await tryWebgpu(log);
      case 'wasm':
        return await tryWasm(log);
      case 'cpu':
        return await tryCpu();
    }
  } catch (err) {
    return { reason: err instanceof Error ? err.message : String(err) };
  }
}

function tfjsVersion(): string {
  return tf.version_core;
}

async function tryTensorflow(): Promise<Attempt> {
  const failures: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      // A plain require keeps tsc from needing the (optional, usually absent) package's types.
      require(pkg);
    } catch (err) {
      failures.push(`${pkg}: ${firstLine(err)}`);
      continue;
    }
    if (!(await tf.setBackend('tensorflow'))) {
      failures.push(`${pkg} loaded but setBackend('tensorflow') failed`);
      continue;
    }
    return { info: { name: 'tensorflow', detail: `${pkg} (libtensorflow)`, tfjsVersion: tfjsVersion(), threads: os.cpus().length } };
  }
  return { reason: `${failures.join('; ')} (install @tensorflow/tfjs-node or -gpu where its libtensorflow download works)` };
}

/**
 * Dawn only finds GPUs through Vulkan on Linux, and prints a warning on stderr when the loader is
 * missing; probing the library first keeps a GPU-less machine quiet. dlopen of a library that is
 * not a Node addon fails with "did not self-register" once it has loaded, which means it exists.
 */
function vulkanLoaderMissing(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, 'libvulkan.so.1');
    return false;
  } catch (err) {
    return /cannot open shared object file/.test(firstLine(err));
  }
}

/**
 * Set CONDENSE_WEBGPU_SOFTWARE=1 to accept a software adapter (Mesa's lavapipe, SwiftShader): far
 * slower than wasm, but it runs the webgpu kernels' tests on a machine without a GPU.
 */
function softwareAdapterAllowed(): boolean {
  return process.env.CONDENSE_WEBGPU_SOFTWARE === '1';
}

/**
 * Options for Dawn's instance from CONDENSE_WEBGPU_DAWN_OPTIONS, separated by ';' (for example
 * `enable-dawn-features=allow_unsafe_apis`, which per-kernel GPU timings in profiles need).
 */
function dawnOptions(): string[] {
  return (process.env.CONDENSE_WEBGPU_DAWN_OPTIONS ?? '').split(';').map((s) => s.trim()).filter(Boolean);
}

async function tryWebgpu(log: Logger | undefined): Promise<Attempt> {
  if (vulkanLoaderMissing()) return { reason: 'no Vulkan loader (libvulkan.so.1), so no GPU adapter; install the GPU driver with Vulkan support' };
  let webgpu: { create: (options: string[]) => any; globals: object };
  try {
    // tsc (module node16) keeps import() a real dynamic import, which the ESM-only package needs; a literal
    // specifier lets a bundle of an entry point (../shared/gpu/pack.sh) carry it.
    webgpu = await import('webgpu');
  } catch (err) {
    return { reason: `the optional package webgpu cannot be imported (${firstLine(err)})` };
  }
  const g = globalThis as any;
  Object.assign(g, webgpu.globals);
  const gpu = webgpu.create(dawnOptions());
  if (g.navigator === undefined) {
    g.navigator = { gpu };
  } else {
    // Node ≥ 21 defines a read-only navigator; give it a gpu instead of replacing it.
    Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter == null) return { reason: 'no GPU adapter' };
  const software = adapter.isFallbackAdapter === true || adapter.info?.isFallbackAdapter === true;
  // A software adapter would be slower than wasm.
  if (software && !softwareAdapterAllowed()) return { reason: 'only a software (fallback) GPU adapter (CONDENSE_WEBGPU_SOFTWARE=1 accepts it, for tests)' };
  // Registers itself only now that navigator.gpu exists.
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) return { reason: "a GPU adapter exists but setBackend('webgpu') failed" };
  const webgpuVersion: string = require('@tensorflow/tfjs-backend-webgpu/package.json').version;
  watchWebgpuErrors(tf.backend() as never, log);
  const kernels = registerWebgpuKernels(tf.backend() as never, webgpuVersion, log);
  const adapterInfo = adapter.info ?? {};
  const description = [adapterInfo.vendor, adapterInfo.architecture, adapterInfo.description].filter(Boolean).join(' ');
  const extras = kernels.replaced.length > 0 ? ' + Condense kernels' : '';
  return {
    info: { name: 'webgpu', detail: `Dawn (webgpu package) ${description || 'GPU adapter'}${software ? ' (software)' : ''}${extras}`.trim(), tfjsVersion: tfjsVersion(), threads: 1 },
  };
}

type WasmModule = typeof import('@tensorflow/tfjs-backend-wasm');
let wasmPrepared: WasmModule | undefined;

/**
 * Loads tfjs-backend-wasm, points it at its .wasm files on disk and registers Condense's training
 * kernels, without switching to it. Idempotent. Benchmarks use it to run wasm next to another backend.
 */
export function prepareWasmBackend(log?: Logger): WasmModule {
  if (wasmPrepared === undefined) {
    const wasm: WasmModule = require('@tensorflow/tfjs-backend-wasm');
    const distDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm'));
    wasm.setWasmPaths(distDir + path.sep);
    registerWasmTrainingKernels(wasm.version_wasm, log);
    registerBroadcastGradients(log);
    registerFastBatchNorm(log);
    registerPrunedGradientConv2D(log);
    wasmPrepared = wasm;
  }
  return wasmPrepared;
}

async function tryWasm(log: Logger | undefined): Promise<Attempt> {
  const wasm = prepareWasmBackend(log);
  if (!(await tf.setBackend('wasm'))) return { reason: "setBackend('wasm') failed" };
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return {
    info: {
      name: 'wasm',
      detail: `@tensorflow/tfjs-backend-wasm ${wasm.version_wasm}${simd ? ' SIMD' : ' (no SIMD)'} + Condense training kernels`,
      tfjsVersion: tfjsVersion(),
      threads: wasm.getThreadsCount(),
    },
  };
}

async function tryCpu(): Promise<Attempt> {
  if (!(await tf.setBackend('cpu'))) return { reason: "setBackend('cpu') failed" };
  return { info: { name: 'cpu', detail: '@tensorflow/tfjs-backend-cpu (JavaScript)', tfjsVersion: tfjsVersion(), threads: 1 } };
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0];
}
