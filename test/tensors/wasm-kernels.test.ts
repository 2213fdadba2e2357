import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { WASM_TRAINING_KERNELS } from '../../src/core/tensors/wasm-kernels';
import {
  IM2COL_COLUMNS,
  im2colFilterGradient,
  swappedConvFilterGradient,
  useSwappedConv,
} from '../../src/core/tensors/wasm-kernels/conv2d-backprop-filter';
import { gaussianValues, onBackend, relativeMaxError, sizeOf, take } from './support';

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];

interface ConvCase {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: [number, number];
  pad: Pad;
  dilations: [number, number];
}

/**
 * Direct sum from the definition of the filter gradient, in float64: an independent reference
 * for the cases tfjs' cpu kernel cannot do (dilation > 1).
 */
function naiveFilterGradient(c: ConvCase, x: Float32Array, dy: Float32Array, dyShape: number[]): Float64Array {
  const [batch, inH, inW, inC] = c.x;
  const [kH, kW, , outC] = c.filter;
  const [, outH, outW] = dyShape;
  const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, c.dilations, c.pad, undefined, false, 'channelsLast');
  const dw = new Float64Array(kH * kW * inC * outC);
  for (let b = 0; b < batch; b++)
    for (let oh = 0; oh < outH; oh++)
      for (let ow = 0; ow < outW; ow++)
        for (let kh = 0; kh < kH; kh++) {
          const ih = oh * c.strides[0] + kh * c.dilations[0] - info.padInfo.top;
          if (ih < 0 || ih >= inH) continue;
          for (let kw = 0; kw < kW; kw++) {
            const iw = ow * c.strides[1] + kw * c.dilations[1] - info.padInfo.left;
            if (iw < 0 || iw >= inW) continue;
            for (let ci = 0; ci < inC; ci++) {
              const xv = x[((b * inH + ih) * inW + iw) * inC + ci];
              for (let co = 0; co < outC; co++) {
                dw[((kh * kW + kw) * inC + ci) * outC + co] += xv * dy[((b * outH + oh) * outW + ow) * outC + co];
              }
            }
          }
        }
  return dw;
}

function filterGradient(c: ConvCase, x: Float32Array, dy: Float32Array, dyShape: number[]): Float32Array {
  const attrs: Record<string, unknown> = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: c.filter };
  if (c.dilations[0] !== 1 || c.dilations[1] !== 1) attrs.dilations = c.dilations;
  const out = tf.tidy(() =>
    tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: tf.tensor4d(x, c.x), dy: tf.tensor(dy, dyShape) }, attrs as any),
  ) as tf.Tensor;
  expect(out.shape).toEqual(c.filter);
  return take(out);
}

function outputShape(c: ConvCase): number[] {
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, c.dilations, c.pad, undefined, false, 'channelsLast').outShape;
}

const CASES: ConvCase[] = [
  { x: [2, 7, 7, 3], filter: [3, 3, 3, 4], strides: [1, 1], pad: 'same', dilations: [1, 1] },
  { x: [3, 8, 8, 2], filter: [3, 3, 2, 5], strides: [2, 2], pad: 'same', dilations: [1, 1] },
  { x: [3, 9, 9, 2], filter: [3, 3, 2, 5], strides: [2, 2], pad: 'same', dilations: [1, 1] },
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: [2, 2], pad: 'valid', dilations: [1, 1] },
  { x: [2, 9, 11, 3], filter: [3, 3, 3, 4], strides: [2, 2], pad: 'valid', dilations: [1, 1] },
  { x: [2, 11, 10, 1], filter: [5, 5, 1, 6], strides: [1, 1], pad: 'valid', dilations: [1, 1] },
  { x: [4, 8, 8, 4], filter: [1, 1, 4, 6], strides: [2, 2], pad: 'same', dilations: [1, 1] },
  { x: [2, 9, 7, 3], filter: [2, 3, 3, 2], strides: [2, 1], pad: 'same', dilations: [1, 1] },
  { x: [2, 10, 9, 2], filter: [3, 2, 2, 3], strides: [1, 3], pad: 'valid', dilations: [1, 1] },
  { x: [2, 7, 8, 2], filter: [3, 3, 2, 3], strides: [2, 2], pad: [[0, 0], [1, 2], [0, 1], [0, 0]], dilations: [1, 1] },
  { x: [2, 12, 13, 2], filter: [3, 3, 2, 3], strides: [1, 1], pad: 'same', dilations: [2, 2] },
  { x: [3, 11, 11, 2], filter: [3, 3, 2, 4], strides: [1, 1], pad: 'valid', dilations: [2, 2] },
  { x: [2, 13, 12, 3], filter: [3, 2, 3, 2], strides: [1, 1], pad: 'same', dilations: [2, 3] },
  { x: [2, 15, 15, 2], filter: [3, 3, 2, 3], strides: [2, 2], pad: 'valid', dilations: [2, 2] },
];

beforeAll(async () => {
  const info = await initTensorBackend('wasm');
  expect(info.name).toBe('wasm');
});

describe('wasm training kernels', () => {
  test('the kernels Condense adds are registered for wasm and were missing from it', () => {
    for (const config of WASM_TRAINING_KERNELS) {
      expect(tf.getKernel(config.kernelName, 'wasm')).toBe(config);
    }
  });

  test.each(CASES)('Conv2DBackpropFilter: $x / $filter stride $strides pad $pad dilation $dilations', async (c) => {
    const dyShape = outputShape(c);
    const x = gaussianValues(sizeOf(c.x), 11);
    const dy = gaussianValues(sizeOf(dyShape), 12);
    const onWasm = await onBackend('wasm', () => filterGradient(c, x, dy, dyShape));
    const reference = naiveFilterGradient(c, x, dy, dyShape);
    expect(relativeMaxError(onWasm, reference)).toBeLessThan(1e-5);
    if (c.dilations[0] === 1 && c.dilations[1] === 1) {
      // tfjs' own cpu kernel (no dilation support) must agree too.
      const onCpu = await onBackend('cpu', () => filterGradient(c, x, dy, dyShape));
      expect(relativeMaxError(onWasm, onCpu)).toBeLessThan(1e-5);
      await tf.setBackend('wasm');
    }
  });

  // The kernel picks one formulation per shape; each must be exact on every case. im2col also in
  // groups of one image and in groups that leave a smaller last group.
  const FORMULATIONS = [
    { name: 'swapped conv', run: swappedConvFilterGradient, columns: undefined },
    { name: 'im2col, one group', run: im2colFilterGradient, columns: undefined },
    { name: 'im2col, groups of 1 image', run: im2colFilterGradient, columns: 1 },
    { name: 'im2col, uneven groups', run: im2colFilterGradient, columns: 'two images' },
  ] as const;
  const FORMULATION_CASES = [
    ...CASES,
    { x: [5, 6, 7, 3], filter: [3, 3, 3, 2], strides: [1, 1], pad: 'valid', dilations: [1, 1] },
    { x: [3, 10, 10, 2], filter: [3, 3, 2, 3], strides: [3, 3], pad: 'same', dilations: [1, 1] },
  ] as ConvCase[];

  test.each(FORMULATIONS)('Conv2DBackpropFilter formulation $name is exact on every case', async (f) => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as unknown as import('@tensorflow/tfjs-backend-wasm').BackendWasm;
    const saved = IM2COL_COLUMNS.target;
    try {
      for (const [i, c] of FORMULATION_CASES.entries()) {
        const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, c.dilations, c.pad, undefined, false, 'channelsLast');
        const imageColumns = info.outHeight * (info.outWidth + Math.floor(((c.filter[1] - 1) * c.dilations[1]) / c.strides[1]));
        if (f.columns === 1) IM2COL_COLUMNS.target = 1;
        else if (f.columns === 'two images') IM2COL_COLUMNS.target = 2 * imageColumns;
        else IM2COL_COLUMNS.target = 1e9;
        const x = gaussianValues(sizeOf(c.x), 50 + i);
        const dy = gaussianValues(sizeOf(info.outShape), 70 + i);
        const before = backend.numDataIds();
        const xt = tf.tensor4d(x, c.x);
        const dyt = tf.tensor(dy, info.outShape);
        const out = f.run(backend, xt, dyt, info);
        expect(out.shape).toEqual(c.filter);
        const values = Float32Array.from(backend.readSync(out.dataId) as Float32Array);
        backend.disposeData(out.dataId);
        tf.dispose([xt, dyt]);
        expect(backend.numDataIds()).toBe(before);
        expect(relativeMaxError(values, naiveFilterGradient(c, x, dy, info.outShape))).toBeLessThan(1e-5);
      }
    } finally {
      IM2COL_COLUMNS.target = saved;
    }
  });

  test('Conv2DBackpropFilter takes the swapped conv only at stride 1 with wide padding columns', () => {
    const info = (x: [number, number, number, number], filter: [number, number, number, number], strides: number, pad: 'same' | 'valid') =>
      tf.backend_util.computeConv2DInfo(x, filter, strides, 1, pad, undefined, false, 'channelsLast');
    expect(useSwappedConv(info([128, 32, 32, 16], [3, 3, 16, 16], 1, 'same'))).toBe(false);
    expect(useSwappedConv(info([128, 16, 16, 32], [3, 3, 32, 32], 1, 'same'))).toBe(false);
    expect(useSwappedConv(info([128, 8, 8, 64], [3, 3, 64, 64], 1, 'same'))).toBe(true);
    expect(useSwappedConv(info([128, 16, 16, 32], [3, 3, 32, 64], 2, 'same'))).toBe(false);
    expect(useSwappedConv(info([256, 14, 14, 6], [5, 5, 6, 16], 1, 'valid'))).toBe(true);
  });

  test('the naive reference agrees with the cpu kernel (so it is a fair judge for dilation)', async () => {
    const c = CASES[4];
    const dyShape = outputShape(c);
    const x = gaussianValues(sizeOf(c.x), 21);
    const dy = gaussianValues(sizeOf(dyShape), 22);
    const onCpu = await onBackend('cpu', () => filterGradient(c, x, dy, dyShape));
    expect(relativeMaxError(onCpu, naiveFilterGradient(c, x, dy, dyShape))).toBeLessThan(1e-5);
    await tf.setBackend('wasm');
  });

  test('Conv2DBackpropFilter frees its intermediates', async () => {
    await tf.setBackend('wasm');
    const c = CASES[4];
    const dyShape = outputShape(c);
    const x = gaussianValues(sizeOf(c.x), 31);
    const dy = gaussianValues(sizeOf(dyShape), 32);
    filterGradient(c, x, dy, dyShape);
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const before = backend.numDataIds();
    const tensorsBefore = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) filterGradient(c, x, dy, dyShape);
    expect(backend.numDataIds()).toBe(before);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  test('Conv2DBackpropFilter refuses NCHW with a clear message', async () => {
    await tf.setBackend('wasm');
    tf.tidy(() => {
      expect(() =>
        tf.engine().runKernel(
          tf.Conv2DBackpropFilter,
          { x: tf.zeros([1, 4, 4, 2]), dy: tf.zeros([1, 4, 4, 3]) },
          { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] } as any,
        ),
      ).toThrow(/NHWC/);
    });
  });

  const DEPTHWISE_CASES = [
    { x: [2, 7, 7, 3], filter: [3, 3, 3, 1], strides: 1, pad: 'same' },
    { x: [3, 9, 8, 2], filter: [3, 3, 2, 2], strides: 2, pad: 'valid' },
    { x: [2, 8, 8, 4], filter: [5, 5, 4, 1], strides: 2, pad: 'same' },
  ] as const;

  test.each(DEPTHWISE_CASES)('depthwise conv gradients (filter and input): $x / $filter stride $strides $pad', async (c) => {
    const x = gaussianValues(sizeOf(c.x), 41);
    const w = gaussianValues(sizeOf(c.filter), 42);
    const gradients = () => {
      const [dx, dw] = tf.grads((xx: tf.Tensor, ww: tf.Tensor) =>
        tf.sum(tf.square(tf.depthwiseConv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, c.strides, c.pad))),
      )([tf.tensor(x, [...c.x]), tf.tensor(w, [...c.filter])]);
      return [take(dx), take(dw)];
    };
    const [dxWasm, dwWasm] = await onBackend('wasm', gradients);
    const [dxCpu, dwCpu] = await onBackend('cpu', gradients);
    await tf.setBackend('wasm');
    expect(relativeMaxError(dxWasm, dxCpu)).toBeLessThan(1e-5);
    expect(relativeMaxError(dwWasm, dwCpu)).toBeLessThan(1e-5);
  });
});
