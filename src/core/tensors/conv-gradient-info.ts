import * as tf from '@tensorflow/tfjs';
import { kernelInput } from './kernel-calls';

/**
 * What every backend's Conv2DBackpropInput / Conv2DBackpropFilter replacement reads first: its two
 * inputs and the conv's geometry, with the same checks (NHWC only, dy the conv output's shape).
 */

type Pair = [number, number];
type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

export interface Conv2DBackpropInputAttrs {
  inputShape: [number, number, number, number];
  strides: Pair | number;
  pad: Pad;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export interface Conv2DBackpropFilterAttrs {
  filterShape: [number, number, number, number];
  strides: Pair | number;
  pad: Pad;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  /** Not part of tfjs-core's attrs (its Conv2D gradient refuses dilation); honoured where a kernel says so. */
  dilations?: Pair | number;
}

function checkedInfo(
  backendName: string,
  kernelName: string,
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: Conv2DBackpropFilterAttrs | Conv2DBackpropInputAttrs,
  dy: tf.TensorInfo,
): tf.backend_util.Conv2DInfo {
  if (attrs.dataFormat !== 'NHWC') {
    throw new Error(`${backendName} ${kernelName} supports dataFormat 'NHWC' only, got '${attrs.dataFormat}'`);
  }
  const dilations = 'dilations' in attrs ? (attrs.dilations ?? 1) : 1;
  const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, attrs.strides, dilations, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  if (dy.shape[0] !== info.batchSize || dy.shape[1] !== info.outHeight || dy.shape[2] !== info.outWidth || dy.shape[3] !== info.outChannels) {
    throw new Error(`${backendName} ${kernelName}: dy shape ${JSON.stringify(dy.shape)} does not match the conv output ${JSON.stringify(info.outShape)}`);
  }
  return info;
}

/** Inputs and geometry of a Conv2DBackpropInput call. */
export function inputGradientCall(
  backendName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: Conv2DBackpropInputAttrs,
): { dy: tf.TensorInfo; filter: tf.TensorInfo; info: tf.backend_util.Conv2DInfo } {
  const dy = kernelInput(inputs, 'dy', tf.Conv2DBackpropInput);
  const filter = kernelInput(inputs, 'filter', tf.Conv2DBackpropInput);
  const info = checkedInfo(backendName, tf.Conv2DBackpropInput, attrs.inputShape, filter.shape as [number, number, number, number], attrs, dy);
  return { dy, filter, info };
}

/** Inputs and geometry of a Conv2DBackpropFilter call (attrs.dilations honoured when given). */
export function filterGradientCall(
  backendName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: Conv2DBackpropFilterAttrs,
): { x: tf.TensorInfo; dy: tf.TensorInfo; info: tf.backend_util.Conv2DInfo } {
  const x = kernelInput(inputs, 'x', tf.Conv2DBackpropFilter);
  const dy = kernelInput(inputs, 'dy', tf.Conv2DBackpropFilter);
  const info = checkedInfo(backendName, tf.Conv2DBackpropFilter, x.shape as [number, number, number, number], attrs.filterShape, attrs, dy);
  return { x, dy, info };
}
