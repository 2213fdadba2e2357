import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { delegateToCpu } from './kernel-calls';

/** Depthwise convs are not in the zoo's training path, so this copies through the cpu kernel. */
export const depthwiseConv2dNativeBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) =>
    delegateToCpu(backend as BackendWasm, tf.DepthwiseConv2dNativeBackpropInput, inputs, ['dy', 'filter'], attrs ?? {}),
};
