import { SeededRandom } from '../random';
import type { RawDataset, RawImageSet } from './raw';

/** The ten colours of Colored-MNIST; colour k is the one tied to digit k in the training split. */
export const COLORED_MNIST_COLORS: ReadonlyArray<{ name: string; rgb: [number, number, number] }> = [
  { name: 'red', rgb: [255, 0, 0] },
  { name: 'orange', rgb: [255, 128, 0] },
  { name: 'yellow', rgb: [255, 255, 0] },
  { name: 'green', rgb: [0, 255, 0] },
  { name: 'cyan', rgb: [0, 255, 255] },
  { name: 'blue', rgb: [0, 0, 255] },
  { name: 'purple', rgb: [128, 0, 255] },
  { name: 'magenta', rgb: [255, 0, 255] },
  { name: 'pink', rgb: [255, 128, 192] },
  { name: 'white', rgb: [255, 255, 255] },
];

export interface ColoredMnistOptions {
  /** Probability that a training digit has its label's colour (default 0.9). */
  trainCorrelation?: number;
  /** Seed of the colour choices (default 0). */
  seed?: number;
}

/** Draws the grey digit in a colour: each RGB channel is the grey value scaled by the colour's channel. */
function colourSplit(grey: RawImageSet, chooseColour: (label: number) => number): RawImageSet {
  const [h, w] = grey.shape;
  const pixels = h * w;
  const out = new Uint8Array(grey.count * pixels * 3);
  const contexts = new Int32Array(grey.count);
  // Per colour and channel, the coloured value of each grey level (round(grey * channel / 255)).
  const tables = COLORED_MNIST_COLORS.map(({ rgb }) => rgb.map((ch) => Uint8Array.from({ length: 256 }, (_, v) => Math.round((v * ch) / 255))));
  for (let i = 0; i < grey.count; i++) {
    const colour = chooseColour(grey.labels[i]);
    contexts[i] = colour;
    const [r, g, b] = tables[colour];
    for (let p = 0; p < pixels; p++) {
      const v = grey.pixels[i * pixels + p];
      const o = 3 * (i * pixels + p);
      out[o] = r[v];
      out[o + 1] = g[v];
      out[o + 2] = b[v];
    }
  }
  return { pixels: out, labels: grey.labels, contexts, count: grey.count, shape: [h, w, 3] };
}

function agreement(set: RawImageSet): number {
  let same = 0;
  for (let i = 0; i < set.count; i++) if (set.contexts![i] === set.labels[i]) same++;
  return set.count > 0 ? same / set.count : 0;
}

/**
 * Colored-MNIST from MNIST (same splits). Training split: colour = the label's colour with probability
 * `trainCorrelation`, else one of the other nine uniformly; test split: colour uniform over ten, independent
 * of the label. The colour index is the context label.
 */
export function colourMnist(mnist: RawDataset, options: ColoredMnistOptions = {}): RawDataset {
  const correlation = options.trainCorrelation ?? 0.9;
  const seed = options.seed ?? 0;
  if (!(correlation >= 0 && correlation <= 1)) throw new RangeError(`trainCorrelation must be in [0, 1]; got ${correlation}`);
  const n = COLORED_MNIST_COLORS.length;
  const root = new SeededRandom(seed);
  const trainRng = new SeededRandom(root.deriveSeed());
  const testRng = new SeededRandom(root.deriveSeed());
  const train = colourSplit(mnist.train, (label) => (trainRng.next() < correlation ? label : (label + 1 + trainRng.int(n - 1)) % n));
  const test = colourSplit(mnist.test, () => testRng.int(n));
  return {
    name: 'colored-mnist',
    classNames: mnist.classNames,
    contextNames: COLORED_MNIST_COLORS.map((c) => c.name),
    provenance:
      `Colored-MNIST (colouring seed ${seed}) derived from: ${mnist.provenance}. Each digit is drawn in one of ${n} colours ` +
      `(the context label). Train: the label's colour with probability ${correlation}, else one of the other ${n - 1} uniformly ` +
      `(measured colour/label agreement ${agreement(train).toFixed(3)}); test: colour uniform, independent of the label ` +
      `(measured agreement ${agreement(test).toFixed(3)}).`,
    train,
    test,
  };
}
