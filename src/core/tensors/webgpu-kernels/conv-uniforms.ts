import * as tf from '@tensorflow/tfjs';

/**
 * A conv's geometry as WGSL uniforms: the declarations a program lists and the values it is run
 * with, from one list of field names so that the two stay in the same order.
 */

const FIELD_VALUES = {
  inHeight: (info: tf.backend_util.Conv2DInfo) => info.inHeight,
  inWidth: (info: tf.backend_util.Conv2DInfo) => info.inWidth,
  inChannels: (info: tf.backend_util.Conv2DInfo) => info.inChannels,
  outHeight: (info: tf.backend_util.Conv2DInfo) => info.outHeight,
  outWidth: (info: tf.backend_util.Conv2DInfo) => info.outWidth,
  outChannels: (info: tf.backend_util.Conv2DInfo) => info.outChannels,
  filterHeight: (info: tf.backend_util.Conv2DInfo) => info.filterHeight,
  filterWidth: (info: tf.backend_util.Conv2DInfo) => info.filterWidth,
  strideHeight: (info: tf.backend_util.Conv2DInfo) => info.strideHeight,
  strideWidth: (info: tf.backend_util.Conv2DInfo) => info.strideWidth,
  padTop: (info: tf.backend_util.Conv2DInfo) => info.padInfo.top,
  padLeft: (info: tf.backend_util.Conv2DInfo) => info.padInfo.left,
  dilationHeight: (info: tf.backend_util.Conv2DInfo) => info.dilationHeight,
  dilationWidth: (info: tf.backend_util.Conv2DInfo) => info.dilationWidth,
};

export type ConvField = keyof typeof FIELD_VALUES;

export type ProgramUniform = { type: string; data: number[] };

/** The geometry of a conv's implicit product, input or output side: sizes, filter width, stride, padding. */
export const CONV_PRODUCT_FIELDS: readonly ConvField[] = [
  'inHeight',
  'inWidth',
  'inChannels',
  'outHeight',
  'outWidth',
  'outChannels',
  'filterWidth',
  'strideHeight',
  'strideWidth',
  'padTop',
  'padLeft',
];

/** `name : i32,` for each field, for a program's `uniforms`. */
export function convUniformDeclarations(fields: readonly ConvField[]): string {
  return fields.map((f) => `${f} : i32,`).join(' ');
}

/** The fields' values for `info`, in the same order. */
export function convUniformValues(info: tf.backend_util.Conv2DInfo, fields: readonly ConvField[]): ProgramUniform[] {
  return int32Uniforms(fields.map((f) => FIELD_VALUES[f](info)));
}

export function int32Uniforms(values: number[]): ProgramUniform[] {
  return values.map((v) => ({ type: 'int32', data: [v] }));
}
