import * as tf from '@tensorflow/tfjs';

/**
 * Optimizers that take the learning rate per step (tf.train's keep it fixed at construction) and
 * update only the variables they are given. Weight decay applies only to the parameters flagged
 * `decay` (conv/dense kernels; never BN or biases):
 * - `sgd`: PyTorch's SGD with momentum and L2 weight decay added to the gradient
 *   (g ← g + wd·w, the same as wd/2·‖w‖² in the loss); v ← μ·v + g; w ← w − lr·v.
 * - `adam`: Adam with bias correction and decoupled weight decay (AdamW: w ← w − lr·wd·w).
 */
export interface ParamOptimizer {
  /** Applies one update; `grads[i]` belongs to `params[i]`. Does not dispose the gradients. */
  step(grads: tf.Tensor[], learningRate: number): void;
  /** Steps taken and the slot variables (momentum; Adam's m then v), for checkpoints. */
  state(): { steps: number; slots: tf.Variable[] };
  /** Restores what `state()` described: the step count and one array per slot, in the same order. */
  restore(steps: number, slots: Float32Array[]): void;
  dispose(): void;
}

function restoreSlots(slots: tf.Variable[], values: Float32Array[]): void {
  if (values.length !== slots.length) throw new Error(`optimizer state has ${values.length} slots; expected ${slots.length}`);
  slots.forEach((slot, i) => tf.tidy(() => slot.assign(tf.tensor(values[i], slot.shape))));
}

export interface OptimizerParam {
  variable: tf.Variable;
  decay: boolean;
}

export interface OptimizerSettings {
  kind: 'sgd' | 'adam';
  momentum?: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

class SgdMomentum implements ParamOptimizer {
  private readonly velocity: tf.Variable[];

  constructor(
    private readonly params: OptimizerParam[],
    private readonly momentum: number,
    private readonly weightDecay: number,
  ) {
    this.velocity = params.map((p) => tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false)));
  }

  step(grads: tf.Tensor[], learningRate: number): void {
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        let g = grads[i];
        if (p.decay && this.weightDecay > 0) g = tf.add(g, tf.mul(p.variable, this.weightDecay));
        const v = tf.add(tf.mul(this.velocity[i], this.momentum), g);
        this.velocity[i].assign(v);
        p.variable.assign(tf.sub(p.variable, tf.mul(v, learningRate)));
      });
    });
  }

  state(): { steps: number; slots: tf.Variable[] } {
    return { steps: 0, slots: this.velocity };
  }

  restore(_steps: number, slots: Float32Array[]): void {
    restoreSlots(this.velocity, slots);
  }

  dispose(): void {
    tf.dispose(this.velocity);
  }
}

class AdamW implements ParamOptimizer {
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private t = 0;

  constructor(
    private readonly params: OptimizerParam[],
    private readonly weightDecay: number,
    private readonly beta1: number,
    private readonly beta2: number,
    private readonly epsilon: number,
  ) {
    this.m = params.map((p) => tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false)));
    this.v = params.map((p) => tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false)));
  }

  step(grads: tf.Tensor[], learningRate: number): void {
    this.t += 1;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const g = grads[i];
        const m = tf.add(tf.mul(this.m[i], this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(this.v[i], this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        let update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), this.epsilon));
        if (p.decay && this.weightDecay > 0) update = tf.add(update, tf.mul(p.variable, this.weightDecay));
        p.variable.assign(tf.sub(p.variable, tf.mul(update, learningRate)));
      });
    });
  }

  state(): { steps: number; slots: tf.Variable[] } {
    return { steps: this.t, slots: [...this.m, ...this.v] };
  }

  restore(steps: number, slots: Float32Array[]): void {
    restoreSlots([...this.m, ...this.v], slots);
    this.t = steps;
  }

  dispose(): void {
    tf.dispose(this.m);
    tf.dispose(this.v);
  }
}

export function createOptimizer(params: OptimizerParam[], settings: OptimizerSettings): ParamOptimizer {
  const weightDecay = settings.weightDecay ?? 0;
  if (settings.kind === 'sgd') return new SgdMomentum(params, settings.momentum ?? 0.9, weightDecay);
  return new AdamW(params, weightDecay, settings.beta1 ?? 0.9, settings.beta2 ?? 0.999, settings.epsilon ?? 1e-8);
}

/** True for weights that weight decay and pruning act on: conv and dense kernels. */
export function isKernelWeight(originalName: string): boolean {
  return /(^|\/)(kernel|depthwise_kernel|pointwise_kernel)$/.test(originalName);
}

/** The model's trainable variables as optimizer parameters, kernels flagged for weight decay. */
export function trainableParams(model: tf.LayersModel): OptimizerParam[] {
  return model.trainableWeights.map((w) => ({ variable: w.read() as tf.Variable, decay: isKernelWeight(w.originalName) }));
}
