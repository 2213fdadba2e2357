import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type ModelHandle, type ModelSpec, ModelSpecError, validateModelSpec } from './model-spec';

/**
 * TF.js LayersModel directories: `model.json` (topology + weights manifest) and binary weight files,
 * the format `tf.loadLayersModel` reads. Pure @tensorflow/tfjs has no file:// handler, so reading
 * and writing go through small IOHandlers over `fs` here.
 */

export const MODEL_JSON_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';

/** A model directory, or an upload of one, that cannot be used; the message says what to fix. */
export class ModelFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFormatError';
  }
}

/** What Condense stores under `userDefinedMetadata.condense` in model.json. */
export interface CondenseModelMetadata {
  name?: string;
  spec?: ModelSpec;
}

/** A model's files in memory: model.json text and weight files by the path the manifest gives them. */
export interface ModelFiles {
  modelJson: string | Buffer;
  weights: Map<string, Buffer>;
}

/** Bytes per element of each weight dtype TF.js writes (quantized weights use their stored dtype). */
const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

function toBuffer(data: tf.io.WeightData | undefined): Buffer {
  if (data === undefined) return Buffer.alloc(0);
  return Buffer.from(tf.io.CompositeArrayBuffer.join(data));
}

/** Serializes a model to the files `saveModelDir` would write, without touching the disk. */
export async function serializeModel(model: tf.LayersModel, meta: CondenseModelMetadata = {}): Promise<ModelFiles> {
  let files: ModelFiles | undefined;
  await model.save({
    save: async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
      const weights = toBuffer(artifacts.weightData);
      const condense: CondenseModelMetadata = {};
      if (meta.name !== undefined) condense.name = meta.name;
      if (meta.spec !== undefined) condense.spec = meta.spec;
      const modelJson = {
        format: 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
        userDefinedMetadata: { ...(artifacts.userDefinedMetadata ?? {}), condense },
      };
      files = { modelJson: JSON.stringify(modelJson), weights: new Map([[WEIGHTS_FILE, weights]]) };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.length } };
    },
  });
  return files!;
}

function totalBytes(files: ModelFiles): number {
  let bytes = Buffer.byteLength(files.modelJson);
  for (const w of files.weights.values()) bytes += w.length;
  return bytes;
}

/** Writes `model` to `dir` (created if missing) as model.json + weights.bin; returns the bytes written. */
export async function saveModelDir(model: tf.LayersModel, dir: string, meta?: { spec?: ModelSpec; name?: string }): Promise<{ bytes: number }> {
  const files = await serializeModel(model, meta);
  await fs.mkdir(dir, { recursive: true });
  for (const [name, data] of files.weights) await fs.writeFile(path.join(dir, name), data);
  // model.json last: a directory with a model.json is complete.
  await fs.writeFile(path.join(dir, MODEL_JSON_FILE), files.modelJson);
  return { bytes: totalBytes(files) };
}

interface WeightsGroup {
  paths: string[];
  weights: tf.io.WeightsManifestEntry[];
}

interface ParsedModelJson {
  modelTopology: object;
  weightsManifest: WeightsGroup[];
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  userDefinedMetadata?: Record<string, unknown>;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Parses and checks model.json text; `where` names its origin in messages. */
function parseModelJson(text: string, where: string): ParsedModelJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(`${where} is not valid JSON (${(e as Error).message}); export the model with tf.LayersModel.save`);
  }
  if (!isObject(json)) throw new ModelFormatError(`${where} must hold a JSON object with modelTopology and weightsManifest`);
  const topology = json.modelTopology;
  if (json.format === 'graph-model' || (isObject(topology) && 'node' in topology)) {
    throw new ModelFormatError(
      `${where} is a TF.js graph model (converted from a SavedModel or frozen graph); Condense needs a LayersModel: ` +
        'export from Keras with tensorflowjs_converter --input_format keras, or save from tf.LayersModel',
    );
  }
  if (!isObject(topology)) throw new ModelFormatError(`${where} has no modelTopology object; it is not a TF.js LayersModel`);
  const config = isObject(topology.model_config) ? topology.model_config : topology;
  const className = config.class_name;
  if (typeof className !== 'string' || !['Model', 'Functional', 'Sequential'].includes(className)) {
    throw new ModelFormatError(`${where} is not a TF.js LayersModel: its topology's class_name is ${JSON.stringify(className)}, expected Model, Functional or Sequential`);
  }
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest) || !manifest.every((g) => isObject(g) && Array.isArray(g.paths) && Array.isArray(g.weights))) {
    throw new ModelFormatError(`${where} has no valid weightsManifest (a list of { paths, weights } groups)`);
  }
  for (const group of manifest as WeightsGroup[]) {
    for (const p of group.paths) {
      if (typeof p !== 'string' || p.length === 0 || path.isAbsolute(p) || p.split(/[\\/]/).includes('..')) {
        throw new ModelFormatError(`${where} names weight file ${JSON.stringify(p)}; weight paths must be relative names inside the model directory`);
      }
    }
    for (const w of group.weights) {
      const dtype = isObject(w) ? (w.quantization?.dtype ?? w.dtype) : undefined;
      if (!isObject(w) || typeof w.name !== 'string' || !Array.isArray(w.shape) || !w.shape.every((d) => Number.isInteger(d) && d >= 0) || typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
        throw new ModelFormatError(`${where} has a malformed weight entry ${JSON.stringify(w)} (needs name, shape and a numeric dtype)`);
      }
    }
  }
  return json as unknown as ParsedModelJson;
}

function groupByteLength(group: WeightsGroup): number {
  return group.weights.reduce((sum, w) => {
    const dtype = w.quantization?.dtype ?? w.dtype;
    return sum + w.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
  }, 0);
}

/** Finds each manifest path in `lookup`, checks each group's total size, and concatenates the weights. */
async function gatherWeights(
  parsed: ParsedModelJson,
  lookup: (p: string) => Promise<Buffer | undefined>,
  where: string,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const group of parsed.weightsManifest) {
    const groupParts: Buffer[] = [];
    for (const p of group.paths) {
      const data = await lookup(p);
      if (data === undefined) throw new ModelFormatError(`weight file "${p}" named in ${where} is missing; upload or copy it next to model.json`);
      groupParts.push(data);
    }
    const got = groupParts.reduce((s, b) => s + b.length, 0);
    const expected = groupByteLength(group);
    if (got !== expected) {
      throw new ModelFormatError(
        `weight file(s) ${group.paths.join(', ')} hold ${got} bytes but ${where} describes ${expected} bytes of weights; the files do not belong to this model.json or are truncated`,
      );
    }
    parts.push(...groupParts);
  }
  return Buffer.concat(parts);
}

function condenseMetadata(parsed: ParsedModelJson): CondenseModelMetadata {
  const meta = parsed.userDefinedMetadata?.condense;
  return isObject(meta) ? (meta as CondenseModelMetadata) : {};
}

/** Checks that the model takes NHWC images and outputs [batch, classes]. */
function checkImageClassifier(model: tf.LayersModel, where: string): void {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new ModelFormatError(`${where} has ${model.inputs.length} inputs and ${model.outputs.length} outputs; Condense needs one image input and one logits output`);
  }
  const input = model.inputs[0].shape;
  if (input.length !== 4 || input.slice(1).some((d) => d == null || d <= 0)) {
    throw new ModelFormatError(`${where} must take images [batch, height, width, channels] with fixed height, width and channels; its input is ${JSON.stringify(input)}`);
  }
  const output = model.outputs[0].shape;
  if (output.length !== 2 || output[1] == null || output[1] < 2) {
    throw new ModelFormatError(`${where} must output class logits [batch, classes] with at least 2 classes; its output is ${JSON.stringify(output)}`);
  }
}

async function buildHandle(parsed: ParsedModelJson, weights: Buffer, where: string, fallbackName: string): Promise<ModelHandle> {
  const weightSpecs = parsed.weightsManifest.flatMap((g) => g.weights);
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.length) as ArrayBuffer;
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel({
      load: async () => ({ modelTopology: parsed.modelTopology, weightSpecs, weightData, format: parsed.format, userDefinedMetadata: parsed.userDefinedMetadata as tf.io.ModelArtifacts['userDefinedMetadata'] }),
    });
  } catch (e) {
    throw new ModelFormatError(`${where} could not be loaded as a TF.js LayersModel: ${(e as Error).message}`);
  }
  try {
    checkImageClassifier(model, where);
    const meta = condenseMetadata(parsed);
    let spec: ModelSpec | undefined;
    if (meta.spec !== undefined) {
      try {
        spec = validateModelSpec(meta.spec);
      } catch (e) {
        if (e instanceof ModelSpecError) throw new ModelFormatError(`${where} carries an invalid Condense model spec: ${e.message}`);
        throw e;
      }
      const input = model.inputs[0].shape.slice(1);
      if (JSON.stringify(input) !== JSON.stringify(spec.inputShape)) {
        throw new ModelFormatError(`${where} claims input shape ${JSON.stringify(spec.inputShape)} in its metadata but the model takes ${JSON.stringify(input)}`);
      }
    }
    const name = typeof meta.name === 'string' && meta.name.length > 0 ? meta.name : fallbackName;
    return spec ? { name, model, spec } : { name, model };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Reads a model directory's files into memory, checking that model.json and its weight files exist. */
async function readModelDirFiles(dir: string): Promise<{ parsed: ParsedModelJson; weights: Buffer; where: string }> {
  const stat = await fs.stat(dir).catch(() => undefined);
  if (!stat) throw new ModelFormatError(`model directory ${dir} does not exist`);
  if (!stat.isDirectory()) throw new ModelFormatError(`${dir} is not a directory; give the directory that holds model.json and its weight files`);
  const jsonPath = path.join(dir, MODEL_JSON_FILE);
  const text = await readIfExists(jsonPath);
  if (text === undefined) throw new ModelFormatError(`${dir} has no ${MODEL_JSON_FILE}; a TF.js LayersModel directory holds model.json and its weight files`);
  const where = jsonPath;
  const parsed = parseModelJson(text.toString('utf8'), where);
  const weights = await gatherWeights(parsed, (p) => readIfExists(path.join(dir, p)), where);
  return { parsed, weights, where };
}

/** Loads a TF.js LayersModel directory (model.json + weights). ModelFormatError when it is not usable. */
export async function loadModelDir(dir: string): Promise<ModelHandle> {
  const { parsed, weights, where } = await readModelDirFiles(dir);
  return buildHandle(parsed, weights, where, path.basename(path.resolve(dir)));
}

function lookupUploaded(weights: Map<string, Buffer>, p: string): Buffer | undefined {
  // Uploads usually carry bare file names; the manifest may say "./weights.bin" or "sub/weights.bin".
  return weights.get(p) ?? weights.get(path.posix.normalize(p)) ?? weights.get(path.posix.basename(p));
}

/** Loads a model from uploaded bytes: model.json text and weight files keyed by file name. */
export async function loadModelFromFiles(files: ModelFiles): Promise<ModelHandle> {
  const where = 'the uploaded model.json';
  const parsed = parseModelJson(files.modelJson.toString(), where);
  const weights = await gatherWeights(parsed, async (p) => lookupUploaded(files.weights, p), where);
  return buildHandle(parsed, weights, where, 'uploaded-model');
}

/** JSON with object keys sorted, so the hash does not depend on key order. */
function canonicalJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonicalJson).join(',')}]`;
  if (isObject(x)) {
    return `{${Object.keys(x)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(x[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(x) ?? 'null';
}

/**
 * sha256 (hex) over the model's topology, its weight specs and its weight bytes. Metadata (name,
 * spec, generator) is left out: the same network with the same weights has the same hash.
 */
export async function modelContentHash(source: string | ModelFiles): Promise<string> {
  let parsed: ParsedModelJson;
  let weights: Buffer;
  if (typeof source === 'string') {
    ({ parsed, weights } = await readModelDirFiles(source));
  } else {
    const where = 'the uploaded model.json';
    parsed = parseModelJson(source.modelJson.toString(), where);
    weights = await gatherWeights(parsed, async (p) => lookupUploaded(source.weights, p), where);
  }
  const hash = createHash('sha256');
  hash.update(canonicalJson(parsed.modelTopology));
  hash.update(canonicalJson(parsed.weightsManifest.flatMap((g) => g.weights)));
  hash.update(weights);
  return hash.digest('hex');
}
