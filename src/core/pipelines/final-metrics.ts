import type { ImageSet } from '../data/image-set';
import type { ModelHandle } from '../models/model-spec';
import { countMacs, countParams, countSparsity, measureLatency, modelBytesOnDisk } from '../models/model-metrics';
import { evaluateClassifier } from '../training/evaluator';

export interface FinalModelMetrics {
  top1?: number;
  top5?: number;
  params?: number;
  /** Weights that are not zero; differs from `params` after masked pruning. */
  nonzeroParams?: number;
  macs?: number;
  bytesOnDisk?: number;
  latencyMs?: number;
  latencyBatchSize?: number;
  latencyBackend?: string;
  /** Fraction of conv/dense kernel weights that are masked to zero (the tensors keep their size). */
  sparsityMasked?: number;
  /** Fraction of parameters removed from the architecture (structured pruning); 0 for masked pruning. */
  sparsityRemoved?: number;
}

export const LATENCY_BATCH_SIZE = 1;

/** Accuracy on the test split and the cost of a model: what a run reports for its final model. */
export async function measureFinalModel(
  handle: ModelHandle,
  test: ImageSet | undefined,
  options: { skipCost?: boolean } = {},
): Promise<FinalModelMetrics> {
  const metrics: FinalModelMetrics = {};
  if (test) {
    const evaluation = await evaluateClassifier(handle.model, test);
    metrics.top1 = evaluation.top1;
    metrics.top5 = evaluation.top5;
  }
  if (options.skipCost) return metrics;
  const params = countParams(handle.model);
  const sparsity = await countSparsity(handle.model);
  metrics.params = params.total;
  metrics.sparsityMasked = handle.masks ? sparsity : 0;
  metrics.sparsityRemoved = 0;
  metrics.nonzeroParams = Math.round(params.total - sparsity * prunableWeightCount(handle));
  metrics.macs = countMacs(handle.model);
  metrics.bytesOnDisk = await modelBytesOnDisk(handle.model);
  const latency = await measureLatency(handle.model, { batchSize: LATENCY_BATCH_SIZE, runs: 20, warmup: 3 });
  metrics.latencyMs = latency.medianMs;
  metrics.latencyBatchSize = latency.batchSize;
  metrics.latencyBackend = latency.backend;
  return metrics;
}

function prunableWeightCount(handle: ModelHandle): number {
  let n = 0;
  for (const layer of handle.model.layers) {
    const cls = layer.getClassName();
    if (cls === 'Conv2D' || cls === 'Dense' || cls === 'DepthwiseConv2D') n += layer.getWeights()[0]?.size ?? 0;
  }
  return n;
}
