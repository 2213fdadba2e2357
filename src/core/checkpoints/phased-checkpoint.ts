import type { StageCheckpoint } from '../plugins/contracts';
import { CheckpointFormatError, decodeFramed, encodeFramed } from './framed-buffer';

const MAGIC = 'CNDPHS01';
const DESCRIPTION = 'a phased checkpoint';

interface Header {
  phase: number;
  carryBytes: number;
}

/** What a stage of several phases stored last: the phase it was in, what earlier phases left it, and that phase's own state. */
export interface SavedPhase {
  phase: number;
  /** What the finished phases produced that later ones need (an auto-encoder's weights...). */
  carry: Buffer;
  /** The phase's own state (a trainer checkpoint); undefined when it was stored as the phase began. */
  state: Buffer | undefined;
}

/**
 * In-stage checkpoints for a stage made of consecutive phases that each run their own checkpointed
 * loop (IE-KD trains an auto-encoder, then the student): one slot holds the current phase, the
 * results of the phases before it, and the current phase's state.
 *
 *   const saved = await loadPhase(ctx.checkpoint);              // where a killed worker stopped
 *   if (!saved || saved.phase === 0) { ...train phase 0 with phaseCheckpoint(ctx.checkpoint, 0, saved)...
 *     await beginPhase(ctx.checkpoint, 1, carry, stepsSoFar); }  // phase 0 done: never redone
 *   else restore phase 0's results from saved.carry;
 *   ...train phase 1 with phaseCheckpoint(ctx.checkpoint, 1, saved, carry, stepsSoFar)...
 */
export async function loadPhase(checkpoint: StageCheckpoint | undefined): Promise<SavedPhase | undefined> {
  const buffer = await checkpoint?.load();
  if (!buffer) return undefined;
  const { header, body } = decodeFramed<Header>(buffer, MAGIC, DESCRIPTION);
  if (!Number.isInteger(header.phase) || header.phase < 0 || header.carryBytes > body.length) throw new CheckpointFormatError(`${DESCRIPTION} is truncated or corrupt`);
  const state = body.subarray(header.carryBytes);
  return { phase: header.phase, carry: Buffer.from(body.subarray(0, header.carryBytes)), state: state.length > 0 ? Buffer.from(state) : undefined };
}

/** Records that `phase` begins, with what the phases before it produced; a resumed stage starts there. */
export async function beginPhase(checkpoint: StageCheckpoint, phase: number, carry: Buffer, step: number): Promise<void> {
  await checkpoint.save(encodeFramed(MAGIC, { phase, carryBytes: carry.length } satisfies Header, [carry]), step);
}

/**
 * The checkpoint `phase`'s loop uses: it loads the saved state only when the stage stopped inside this
 * phase, and saves its states with the phase and `carry` around them. `stepOffset` (the steps the
 * phases before reported) keeps step numbers stage-wide, as the platform keeps metric points by step.
 */
export function phaseCheckpoint(checkpoint: StageCheckpoint, phase: number, saved: SavedPhase | undefined, carry: Buffer = Buffer.alloc(0), stepOffset = 0): StageCheckpoint {
  return {
    every: checkpoint.every,
    load: async () => (saved?.phase === phase ? saved.state : undefined),
    save: (state, step) => checkpoint.save(encodeFramed(MAGIC, { phase, carryBytes: carry.length } satisfies Header, [carry, state]), stepOffset + step),
  };
}
