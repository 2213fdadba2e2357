import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, ObjectType } from 'type-graphql';

/** A group of people owning projects; the first team, `admin`, may create other teams. */
@ObjectType()
@Entity({ name: 'teams' })
export class Team {
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Field()
  @Column({ type: 'text' })
  name!: string;

  /** True for the team created on first start; its admins may create teams. */
  @Field()
  @Column({ name: 'is_admin_team', type: 'boolean', default: false })
  isAdminTeam!: boolean;

  @Field()
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
