import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * A counter bumped by database triggers whenever the data it names changes (migration
 * 1764300000000): 'runs' covers runs' membership, status, final metrics, signatures and project
 * sharing. Read by VersionedCache to know when cached query results are stale.
 */
@Entity({ name: 'change_counters' })
export class ChangeCounter {
  @PrimaryColumn({ type: 'text' })
  name!: string;

  @Column({ type: 'bigint', default: 0 })
  version!: string;
}
