import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, ObjectType } from 'type-graphql';

/** A workspace of a team: its models, datasets, pipelines and runs. Names are unique per team. */
@ObjectType()
@Entity({ name: 'projects' })
export class Project {
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Field(() => ID)
  @Column({ name: 'team_id', type: 'uuid' })
  teamId!: string;

  @Field()
  @Column({ type: 'text' })
  name!: string;

  /** When true, other teams may compare their runs with this project's runs. */
  @Field()
  @Column({ name: 'shared_for_comparison', type: 'boolean', default: false })
  sharedForComparison!: boolean;

  @Field()
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
