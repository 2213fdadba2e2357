import { Column, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';

/** Whether a project may use a plugin. A plugin with no row is disabled. */
@Entity({ name: 'project_plugins' })
export class ProjectPlugin {
  @PrimaryColumn({ name: 'project_id', type: 'uuid' })
  projectId!: string;

  @PrimaryColumn({ name: 'plugin', type: 'text' })
  plugin!: string;

  @Column({ type: 'boolean' })
  enabled!: boolean;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
