import { Column, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';

/** The latest in-stage checkpoint of a running stage (one per run and stage, overwritten as it goes). */
@Entity({ name: 'run_checkpoints' })
export class RunCheckpoint {
  @PrimaryColumn({ name: 'run_id', type: 'uuid' })
  runId!: string;

  @PrimaryColumn({ name: 'stage_index', type: 'integer' })
  stageIndex!: number;

  /** Steps completed when the state was saved. */
  @Column({ type: 'integer' })
  step!: number;

  @Column({ type: 'bytea' })
  state!: Buffer;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
