import { beginPhase, loadPhase, phaseCheckpoint } from '../../src/core/checkpoints/phased-checkpoint';
import { CheckpointFormatError } from '../../src/core/checkpoints/framed-buffer';
import type { StageCheckpoint } from '../../src/core/plugins/contracts';

/** One slot, as the run executor's checkpoint table has per stage. */
function slot(): StageCheckpoint & { state?: Buffer; step?: number } {
  const s: StageCheckpoint & { state?: Buffer; step?: number } = {
    every: 5,
    load: async () => s.state,
    save: async (state, step) => {
      s.state = Buffer.from(state);
      s.step = step;
    },
  };
  return s;
}

describe('phased checkpoints', () => {
  it('give each phase back only its own state, with the carry of the phases before it and stage-wide steps', async () => {
    const store = slot();
    expect(await loadPhase(store)).toBeUndefined();
    const zero = phaseCheckpoint(store, 0, undefined);
    expect(zero.every).toBe(5);
    await zero.save(Buffer.from('ae step 5'), 5);
    let saved = await loadPhase(store);
    expect(saved).toEqual({ phase: 0, carry: Buffer.alloc(0), state: Buffer.from('ae step 5') });
    expect(await phaseCheckpoint(store, 0, saved).load()).toEqual(Buffer.from('ae step 5'));
    expect(await phaseCheckpoint(store, 1, saved).load()).toBeUndefined();

    // Phase 0 ends after 12 steps: phase 1 begins with its result, and nothing of its own yet.
    const carry = Buffer.from([1, 2, 3, 4]);
    await beginPhase(store, 1, carry, 12);
    expect(store.step).toBe(12);
    saved = await loadPhase(store);
    expect(saved).toEqual({ phase: 1, carry, state: undefined });
    expect(await phaseCheckpoint(store, 0, saved).load()).toBeUndefined();
    expect(await phaseCheckpoint(store, 1, saved, carry, 12).load()).toBeUndefined();

    // Phase 1's trainer saves at its step 10, which is step 22 of the stage; the carry travels along.
    await phaseCheckpoint(store, 1, saved, carry, 12).save(Buffer.from('student step 10'), 10);
    expect(store.step).toBe(22);
    saved = await loadPhase(store);
    expect(saved).toEqual({ phase: 1, carry, state: Buffer.from('student step 10') });
    expect(await phaseCheckpoint(store, 1, saved, carry, 12).load()).toEqual(Buffer.from('student step 10'));
  });

  it('refuse a buffer of another format', async () => {
    const store = slot();
    store.state = Buffer.from('CNDTRN01 something else');
    await expect(loadPhase(store)).rejects.toBeInstanceOf(CheckpointFormatError);
  });
});
