import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, ObjectType } from 'type-graphql';

/** A bearer token of a member. Only the SHA-256 of the token is stored; the token itself is shown once. */
@ObjectType({ description: 'An API token; the secret is never readable after creation' })
@Entity({ name: 'api_tokens' })
export class ApiToken {
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Field(() => ID)
  @Column({ name: 'member_id', type: 'uuid' })
  memberId!: string;

  /** Hex SHA-256 of the whole token; not exposed. */
  @Column({ name: 'token_hash', type: 'text' })
  tokenHash!: string;

  /** The first characters of the token, so people can tell their tokens apart. */
  @Field()
  @Column({ type: 'text' })
  prefix!: string;

  @Field()
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  @Column({ name: 'last_used_at', type: 'timestamptz', nullable: true })
  lastUsedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;
}
