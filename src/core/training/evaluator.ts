import * as tf from '@tensorflow/tfjs';
import { type ImageSet, imageSize } from '../data/image-set';
import { TrainingInputError } from './trainer';
import { yieldToEventLoop } from '../event-loop';

export interface EvaluationResult {
  /** Fraction of images whose highest logit is the label. */
  top1: number;
  /** Fraction of images whose label is among the 5 highest logits (all of them when there are fewer than 5 classes). */
  top5: number;
  /** Top-1 accuracy per class (index = label); 0 for a class with no images (see perClassCount). */
  perClass: number[];
  /** Number of images per class. */
  perClassCount: number[];
  count: number;
  /** Mean softmax cross-entropy. */
  loss: number;
}

/** Evaluates a classifier in inference mode (BatchNorm uses its moving statistics). */
export async function evaluateClassifier(model: tf.LayersModel, data: ImageSet, batchSize = 256): Promise<EvaluationResult> {
  if (data.count < 1) throw new TrainingInputError('cannot evaluate on an empty data set');
  if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new TrainingInputError(`batchSize must be a positive integer; got ${batchSize}`);
  const input = model.inputs[0].shape.slice(1);
  if (JSON.stringify(input) !== JSON.stringify(data.shape)) {
    throw new TrainingInputError(`the model takes images ${JSON.stringify(input)} but the data set holds ${JSON.stringify(data.shape)}`);
  }
  const numClasses = model.outputs[0].shape[1]!;
  const k = Math.min(5, numClasses);
  const size = imageSize(data);
  const perClassCorrect = new Array<number>(numClasses).fill(0);
  const perClassCount = new Array<number>(numClasses).fill(0);
  let top1 = 0;
  let top5 = 0;
  let lossSum = 0;
  for (let start = 0; start < data.count; start += batchSize) {
    const n = Math.min(batchSize, data.count - start);
    const labels = data.labels.subarray(start, start + n);
    const [nll, topIdx] = tf.tidy(() => {
      const x = tf.tensor4d(data.images.subarray(start * size, (start + n) * size), [n, ...data.shape]);
      const logits = model.predict(x) as tf.Tensor2D;
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses);
      const perImageNll = tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(logits)), -1));
      return [perImageNll, tf.topk(logits, k).indices];
    });
    const nllData = await nll.data();
    const top = await topIdx.data();
    tf.dispose([nll, topIdx]);
    await yieldToEventLoop();
    for (let i = 0; i < n; i++) {
      const label = labels[i];
      if (!(label >= 0 && label < numClasses)) throw new TrainingInputError(`label ${label} of image ${start + i} is outside 0..${numClasses - 1}`);
      lossSum += nllData[i];
      perClassCount[label] += 1;
      if (top[i * k] === label) {
        top1 += 1;
        perClassCorrect[label] += 1;
      }
      for (let j = 0; j < k; j++) {
        if (top[i * k + j] === label) {
          top5 += 1;
          break;
        }
      }
    }
  }
  return {
    top1: top1 / data.count,
    top5: top5 / data.count,
    perClass: perClassCorrect.map((c, i) => (perClassCount[i] > 0 ? c / perClassCount[i] : 0)),
    perClassCount,
    count: data.count,
    loss: lossSum / data.count,
  };
}
