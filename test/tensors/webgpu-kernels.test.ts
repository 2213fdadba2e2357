import * as tf from '@tensorflow/tfjs';
import { filterGradientSplit } from '../../src/core/tensors/webgpu-kernels/conv2d-backprop-filter';
import { inputGradientPath, pathFits, useGemmInputGradient } from '../../src/core/tensors/webgpu-kernels/conv2d-gemm';
import { columnsBytes } from '../../src/core/tensors/webgpu-kernels/conv2d-input-columns';
import { leadingReduction, rowSlices } from '../../src/core/tensors/webgpu-kernels/reduce-leading-axes';
import { gpuWords } from '../../src/core/tensors/webgpu-kernels/upload';

/**
 * The parts of the webgpu kernels that need no GPU. The kernels themselves are checked against the
 * cpu backend by `npm run bench:webgpu` (forward, filter and input gradients on 8 shapes, AddN beyond
 * the storage-buffer limit, uploads), on a GPU host or with CONDENSE_WEBGPU_SOFTWARE=1 on Mesa's
 * lavapipe: Jest cannot load the ESM-only `webgpu` package, and CI machines have no Vulkan.
 */

describe('filterGradientSplit', () => {
  // [m, k, co] of CIFAR ResNet-18 (batch 128) convs, LeNet's, and odd sizes.
  const cases: Array<[number, number, number]> = [
    [131072, 27, 64],
    [131072, 576, 64],
    [32768, 576, 128],
    [2048, 4608, 512],
    [50, 27, 5],
    [4096, 288, 64],
    [1, 9, 1],
  ];

  test.each(cases)('m %i, k %i, co %i: slices cover m exactly once, in whole steps of 16 rows', (m, k, co) => {
    const { slices, rowsPerSlice } = filterGradientSplit(m, k, co);
    expect(slices).toBeGreaterThanOrEqual(1);
    expect(rowsPerSlice % 16).toBe(0);
    expect(slices * rowsPerSlice).toBeGreaterThanOrEqual(m);
    expect((slices - 1) * rowsPerSlice).toBeLessThan(m);
  });

  test('splits m only when the output has few 64×64 tiles, never below 256 rows a slice', () => {
    // The stem's dW (27×64: one tile) over 131,072 rows: as many slices as fill ~512 workgroups.
    expect(filterGradientSplit(131072, 27, 64)).toEqual({ slices: 512, rowsPerSlice: 256 });
    // 512→512 (4608×512: 576 tiles) already fills the GPU.
    expect(filterGradientSplit(2048, 4608, 512).slices).toBe(1);
    // Few rows: no slice under 256 rows.
    expect(filterGradientSplit(300, 27, 5).slices).toBe(1);
  });
});

describe('useGemmInputGradient', () => {
  const info = (x: [number, number, number, number], filter: [number, number, number, number], stride: number) =>
    tf.backend_util.computeConv2DInfo(x, filter, stride, 1, 'same', undefined, false, 'channelsLast');

  test('takes stride 1 with 16 or more input channels, leaves strided and few-channel convs to other paths', () => {
    expect(useGemmInputGradient(info([128, 32, 32, 64], [3, 3, 64, 64], 1))).toBe(true);
    expect(useGemmInputGradient(info([128, 4, 4, 512], [3, 3, 512, 512], 1))).toBe(true);
    expect(useGemmInputGradient(info([128, 32, 32, 16], [3, 3, 16, 16], 1))).toBe(true);
    expect(useGemmInputGradient(info([128, 32, 32, 64], [3, 3, 64, 128], 2))).toBe(false);
    expect(useGemmInputGradient(info([128, 32, 32, 3], [3, 3, 3, 64], 1))).toBe(false);
  });
});

describe('gpuWords (upload through queue.writeBuffer)', () => {
  const data = (values: ArrayLike<number>, dtype: string) => ({ values, dtype, shape: [values.length], resource: null });

  test('float32 values go up as they are, NaN, ±∞ and −0 included', () => {
    const values = Float32Array.from([1.5, NaN, Infinity, -Infinity, -0]);
    const words = gpuWords(data(values, 'float32'));
    expect(words).toBe(values);
  });

  test('int32 and bool become the 32-bit integer words webgpu stores them as', () => {
    expect(Array.from(gpuWords(data(Int32Array.from([0, -1, 2147483647]), 'int32')))).toEqual([0, -1, 2147483647]);
    const bools = gpuWords(data(Uint8Array.from([1, 0, 1]), 'bool'));
    expect(bools).toBeInstanceOf(Int32Array);
    expect(Array.from(bools)).toEqual([1, 0, 1]);
    expect(Array.from(gpuWords(data([2.5, 3], 'float32')))).toEqual([2.5, 3]);
  });
});

describe('inputGradientPath', () => {
  const info = (x: [number, number, number, number], filter: [number, number, number, number], stride: number) =>
    tf.backend_util.computeConv2DInfo(x, filter, stride, 1, 'same', undefined, false, 'channelsLast');
  // WebGPU's default limits.
  const limits = { maxStorageBufferBindingSize: 128 * 2 ** 20, maxComputeWorkgroupsPerDimension: 65535 };

  test('the implicit product for stride 1 with 16 or more channels, the columns matrix for strided and few-channel convs', () => {
    expect(inputGradientPath(info([128, 32, 32, 64], [3, 3, 64, 64], 1), limits)).toBe('implicit');
    expect(inputGradientPath(info([128, 4, 4, 512], [3, 3, 512, 512], 1), limits)).toBe('implicit');
    expect(inputGradientPath(info([128, 32, 32, 64], [3, 3, 64, 128], 2), limits)).toBe('columns');
    expect(inputGradientPath(info([128, 32, 32, 64], [1, 1, 64, 128], 2), limits)).toBe('columns');
    expect(inputGradientPath(info([128, 32, 32, 3], [3, 3, 3, 64], 1), limits)).toBe('columns');
  });

  test('the columns matrix: batch·outH·outW by kh·kw·ci floats, within one storage binding or the shipped kernel runs', () => {
    // ResNet-18's 64→128 strided conv at batch 128: 32,768 × 576 floats.
    expect(columnsBytes(info([128, 32, 32, 64], [3, 3, 64, 128], 2))).toBe(4 * 32768 * 576);
    // Batch 512: 302 MB, over the default 128 MiB binding; a device that binds 1 GiB takes it.
    const big = info([512, 32, 32, 64], [3, 3, 64, 128], 2);
    expect(inputGradientPath(big, limits)).toBe('shipped');
    expect(inputGradientPath(big, { ...limits, maxStorageBufferBindingSize: 2 ** 30 })).toBe('columns');
  });

  test('pathFits: what a forced path needs of the device (the kernel refuses a path that does not fit)', () => {
    const big = info([512, 32, 32, 64], [3, 3, 64, 128], 2);
    expect(pathFits('columns', big, limits)).toBe(false);
    expect(pathFits('implicit', big, limits)).toBe(true);
    expect(pathFits('shipped', big, limits)).toBe(true);
    expect(pathFits('implicit', info([128, 224, 224, 64], [3, 3, 64, 64], 1), limits)).toBe(false);
  });

  test('no path whose row tiles would exceed one dispatch dimension', () => {
    // 128 images of 224² with 64 channels: 6.4 million rows, 100,352 tiles of 64.
    expect(inputGradientPath(info([128, 224, 224, 64], [3, 3, 64, 64], 1), limits)).toBe('shipped');
    expect(inputGradientPath(info([64, 224, 224, 64], [3, 3, 64, 64], 1), limits)).toBe('implicit');
  });
});

describe('leadingReduction and rowSlices (webgpu Sum/Mean over leading axes)', () => {
  test('views x as [rows, cols] only when the axes are the leading ones, some but not all', () => {
    expect(leadingReduction([128, 32, 32, 64], [0, 1, 2])).toEqual({ rows: 131072, cols: 64 });
    expect(leadingReduction([128, 32, 32, 64], [2, 0, 1])).toEqual({ rows: 131072, cols: 64 });
    expect(leadingReduction([3, 4, 5], [0])).toEqual({ rows: 3, cols: 20 });
    // Innermost axes, all axes, a gap, none, or an empty tensor: not this kernel's case.
    expect(leadingReduction([3, 4, 5], [1, 2])).toBeUndefined();
    expect(leadingReduction([3, 4, 5], [0, 1, 2])).toBeUndefined();
    expect(leadingReduction([3, 4, 5], [0, 2])).toBeUndefined();
    expect(leadingReduction([3, 4, 5], [])).toBeUndefined();
    expect(leadingReduction([0, 4], [0])).toBeUndefined();
  });

  test.each([1, 63, 64, 129, 2048, 131072, 1_000_003])('%i rows: slices cover them exactly once, at most 1,024, at least 64 rows each when there are enough', (rows) => {
    const { slices, rowsPerSlice } = rowSlices(rows);
    expect(slices).toBeGreaterThanOrEqual(1);
    expect(slices).toBeLessThanOrEqual(1024);
    expect(slices * rowsPerSlice).toBeGreaterThanOrEqual(rows);
    expect((slices - 1) * rowsPerSlice).toBeLessThan(rows);
    if (rows >= 64) expect(rowsPerSlice).toBeGreaterThanOrEqual(64);
  });

  test('a ResNet-18 BatchNorm input (131,072 rows) is split 1,024 ways', () => {
    expect(rowSlices(131072)).toEqual({ slices: 1024, rowsPerSlice: 128 });
  });
});
