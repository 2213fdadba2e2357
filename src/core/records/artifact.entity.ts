import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, Int, ObjectType } from 'type-graphql';

/**
 * A stored file or directory in the content-addressed artifact store. One row per (kind, content);
 * `runId` is the run that first produced it, when a run did.
 */
@ObjectType()
@Entity({ name: 'artifacts' })
export class Artifact {
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  /** What it is: 'model', 'dataset', 'image', 'transform-log'... */
  @Field()
  @Column({ type: 'text' })
  kind!: string;

  /** Hex SHA-256 of the content (for a directory: of its file names and file hashes). */
  @Field()
  @Column({ name: 'content_hash', type: 'text' })
  contentHash!: string;

  @Field(() => Int)
  @Column({ type: 'integer' })
  bytes!: number;

  /** Path relative to the artifact store's root. */
  @Field()
  @Column({ name: 'storage_path', type: 'text' })
  storagePath!: string;

  @Field()
  @Column({ name: 'media_type', type: 'text' })
  mediaType!: string;

  @Field(() => ID, { nullable: true })
  @Column({ name: 'run_id', type: 'uuid', nullable: true })
  runId!: string | null;

  /** The stage of `runId` that made it, when known. */
  @Column({ name: 'stage_index', type: 'integer', nullable: true })
  stageIndex!: number | null;

  @Field()
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
