import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, ObjectType } from 'type-graphql';
import { MemberRole } from './enums';

/** A person (or service account) in one team. */
@ObjectType()
@Entity({ name: 'members' })
export class Member {
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Field(() => ID)
  @Column({ name: 'team_id', type: 'uuid' })
  teamId!: string;

  @Field()
  @Column({ type: 'text' })
  name!: string;

  @Field(() => MemberRole)
  @Column({ type: 'text' })
  role!: MemberRole;

  @Field()
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
