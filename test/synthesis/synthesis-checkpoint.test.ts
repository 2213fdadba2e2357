import { decodeSynthesisState, encodeSynthesisState, loadSynthesisState, saveSynthesisState } from '../../src/core/synthesis/synthesis-checkpoint';
import type { StageCheckpoint } from '../../src/core/plugins/contracts';

describe('synthesis checkpoints', () => {
  it('round-trip images, counters, losses and plugin state exactly', () => {
    const images = Float32Array.from({ length: 37 }, (_, i) => Math.sin(i) / 3);
    const extra = Buffer.from([1, 2, 3, 250]);
    const back = decodeSynthesisState(encodeSynthesisState({ batchesDone: 3, iterationsDone: 600, images, lossHistory: [2.5, 1.25], seconds: 4.5, extra }));
    expect(back.batchesDone).toBe(3);
    expect(back.iterationsDone).toBe(600);
    expect(back.lossHistory).toEqual([2.5, 1.25]);
    expect(back.seconds).toBe(4.5);
    expect(Array.from(back.images)).toEqual(Array.from(images));
    expect(back.extra).toEqual(extra);
  });

  it('decodes from an unaligned buffer and without extra state', () => {
    const encoded = encodeSynthesisState({ batchesDone: 1, iterationsDone: 5, images: Float32Array.from([0.25, 0.5, 0.75]) });
    const unaligned = Buffer.alloc(encoded.length + 1);
    encoded.copy(unaligned, 1);
    const back = decodeSynthesisState(unaligned.subarray(1));
    expect(Array.from(back.images)).toEqual([0.25, 0.5, 0.75]);
    expect(back.extra).toBeUndefined();
  });

  it('refuses buffers that are not checkpoints or are truncated', () => {
    expect(() => decodeSynthesisState(Buffer.from('CDTRAIN1....'))).toThrow(/bad magic/);
    const encoded = encodeSynthesisState({ batchesDone: 1, iterationsDone: 5, images: new Float32Array(4) });
    expect(() => decodeSynthesisState(encoded.subarray(0, encoded.length - 2))).toThrow(/bytes/);
  });

  it('loads what was saved through a stage checkpoint slot, and nothing when none was saved', async () => {
    let stored: Buffer | undefined;
    const slot: StageCheckpoint = {
      every: 10,
      load: async () => stored,
      save: async (state) => {
        stored = state;
      },
    };
    expect(await loadSynthesisState(slot)).toBeUndefined();
    expect(await loadSynthesisState(undefined)).toBeUndefined();
    await saveSynthesisState(slot, { batchesDone: 2, iterationsDone: 20, images: Float32Array.from([1, 0]) }, 20);
    expect((await loadSynthesisState(slot))?.batchesDone).toBe(2);
  });
});
