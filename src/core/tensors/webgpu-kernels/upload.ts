import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

/**
 * Uploads through `queue.writeBuffer` instead of a fresh staging buffer per tensor.
 *
 * tfjs-backend-webgpu 4.22 uploads a tensor's values by creating a mapped staging buffer, copying
 * into it, recording a buffer-to-buffer copy and destroying the staging buffer after the submit:
 * 1.6–2.8 ms per fresh tensor on an H100 (every scalar and label batch of a step pays it), where
 * `queue.writeBuffer` took 0.09 ms. The destination buffer is fresh from the pool, so no recorded
 * but unsubmitted command reads it, and the queue orders the write before every later submit.
 */

export interface TensorData {
  values: ArrayLike<number> | null;
  dtype: string;
  shape: number[];
  resource: unknown;
}

interface BackendInternals {
  tensorMap: { get(dataId: object): TensorData };
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBufferLike };
  queue: { writeBuffer(buffer: GPUBufferLike, offset: number, data: ArrayBufferView): void };
}

type GPUBufferLike = object;

/** WebGPU's GPUBufferUsage flags (the global exists only once Dawn's globals are installed). */
const GPUBufferUsageFlags = {
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  STORAGE: 0x0080,
} as const;

/** Backend instances whose uploads are patched. */
const shippedUploads = new WeakSet<object>();

/** Bytes per element on the GPU: webgpu keeps bool and int32 as 32-bit words, like float32. */
const BYTES_PER_ELEMENT = 4;

/** The values as the 32-bit words the GPU buffer holds. */
export function gpuWords(data: TensorData): Float32Array | Int32Array {
  const values = data.values!;
  if (data.dtype === 'float32') return values instanceof Float32Array ? values : Float32Array.from(values);
  return values instanceof Int32Array ? values : Int32Array.from(values);
}

/** Replaces `uploadToGPU` on this backend instance; idempotent. */
export function useQueueWriteUploads(backend: WebGPUBackend): void {
  if (shippedUploads.has(backend)) return;
  const internals = backend as unknown as BackendInternals & { uploadToGPU(dataId: object): void };
  const shipped = internals.uploadToGPU.bind(backend);
  shippedUploads.add(backend);
  const usage = GPUBufferUsageFlags.STORAGE | GPUBufferUsageFlags.COPY_SRC | GPUBufferUsageFlags.COPY_DST;
  internals.uploadToGPU = (dataId: object) => {
    const data = internals.tensorMap.get(dataId);
    if (data.resource != null || data.values == null || (data.dtype !== 'float32' && data.dtype !== 'int32' && data.dtype !== 'bool')) {
      shipped(dataId);
      return;
    }
    const words = gpuWords(data);
    if (words.length === 0) {
      shipped(dataId);
      return;
    }
    const buffer = internals.bufferManager.acquireBuffer(BYTES_PER_ELEMENT * words.length, usage);
    internals.queue.writeBuffer(buffer, 0, words);
    data.values = null;
    data.resource = buffer;
  };
}

/** Puts the shipped upload back (benchmarks compare both). */
export function useShippedUploads(backend: WebGPUBackend): void {
  if (!shippedUploads.delete(backend)) return;
  // The patch is an own property over the prototype's method.
  delete (backend as unknown as { uploadToGPU?: unknown }).uploadToGPU;
}
