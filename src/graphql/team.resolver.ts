import { Arg, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { injectable } from 'tsyringe';
import { AuthService } from '../core/auth/auth.service';
import { TeamService } from '../core/auth/team.service';
import { ApiToken } from '../core/records/api-token.entity';
import { MemberRole } from '../core/records/enums';
import { Member } from '../core/records/member.entity';
import { Team } from '../core/records/team.entity';
import type { CondenseContext } from './context';
import { CreatedTeam, IssuedApiToken } from './team.type';

@injectable()
@Resolver(() => Team)
export class TeamResolver {
  constructor(private readonly teams: TeamService) {}

  @Mutation(() => CreatedTeam, { description: 'Creates a team with an admin member and its first token (admins of the admin team only)' })
  async createTeam(
    @Arg('name') name: string,
    @Arg('adminName', { nullable: true, defaultValue: 'admin' }) adminName: string,
    @Ctx() ctx: CondenseContext,
  ): Promise<CreatedTeam> {
    const created = await this.teams.createTeam(ctx.auth, name, adminName);
    return { team: created.team, admin: created.admin, adminToken: { apiToken: created.apiToken, token: created.token } };
  }

  @Mutation(() => Member, { description: 'Adds a member to your team (team admins only)' })
  createMember(
    @Arg('teamId', () => ID) teamId: string,
    @Arg('name') name: string,
    @Arg('role', () => MemberRole, { defaultValue: MemberRole.member }) role: MemberRole,
    @Ctx() ctx: CondenseContext,
  ): Promise<Member> {
    return this.teams.createMember(ctx.auth, teamId, name, role);
  }

  @Mutation(() => IssuedApiToken, { description: 'A new token for a member (yourself, or anyone in your team if you are an admin); shown once' })
  createApiToken(@Arg('memberId', () => ID) memberId: string, @Ctx() ctx: CondenseContext): Promise<IssuedApiToken> {
    return this.teams.createApiToken(ctx.auth, memberId);
  }

  @Mutation(() => ApiToken)
  revokeApiToken(@Arg('id', () => ID) id: string, @Ctx() ctx: CondenseContext): Promise<ApiToken> {
    return this.teams.revokeApiToken(ctx.auth, id);
  }

  @FieldResolver(() => [Member])
  members(@Root() team: Team): Promise<Member[]> {
    return this.teams.members(team.id);
  }
}

@injectable()
@Resolver(() => Member)
export class MemberResolver {
  constructor(
    private readonly teams: TeamService,
    private readonly auth: AuthService,
  ) {}

  @Query(() => Member, { description: 'The member the request’s token belongs to' })
  me(@Ctx() ctx: CondenseContext): Member {
    return ctx.caller;
  }

  @FieldResolver(() => Team)
  team(@Root() member: Member): Promise<Team> {
    return this.teams.team(member.teamId);
  }

  @FieldResolver(() => [ApiToken], { description: 'Active tokens; visible to the member and to admins of its team' })
  async tokens(@Root() member: Member, @Ctx() ctx: CondenseContext): Promise<ApiToken[]> {
    const mayRead = member.id === ctx.caller.id || (member.teamId === ctx.team.id && ctx.caller.role === MemberRole.admin);
    return mayRead ? this.auth.activeTokens(member.id) : [];
  }
}
