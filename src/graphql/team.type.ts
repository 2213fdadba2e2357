import { Field, ObjectType } from 'type-graphql';
import { ApiToken } from '../core/records/api-token.entity';
import { Member } from '../core/records/member.entity';
import { Team } from '../core/records/team.entity';

@ObjectType({ description: 'A new API token. `token` is the secret: it is shown here once and never again.' })
export class IssuedApiToken {
  @Field(() => ApiToken)
  apiToken!: ApiToken;

  @Field()
  token!: string;
}

@ObjectType()
export class CreatedTeam {
  @Field(() => Team)
  team!: Team;

  @Field(() => Member)
  admin!: Member;

  @Field(() => IssuedApiToken, { description: "The admin's first token" })
  adminToken!: IssuedApiToken;
}
