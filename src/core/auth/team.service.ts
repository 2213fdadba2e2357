import { DataSource } from 'typeorm';
import { injectable } from 'tsyringe';
import { parseId, parseName } from '../app/validation';
import { isUniqueViolation } from '../db/pg-errors';
import { ConflictError, ForbiddenError, NotFoundError } from '../errors';
import { ApiToken } from '../records/api-token.entity';
import { MemberRole } from '../records/enums';
import { Member } from '../records/member.entity';
import { Team } from '../records/team.entity';
import { AuthService, type Caller } from './auth.service';

export interface IssuedToken {
  apiToken: ApiToken;
  /** The secret, shown once. */
  token: string;
}

/** Teams, their members and members' API tokens, with who may change what. */
@injectable()
export class TeamService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly auth: AuthService,
  ) {}

  /** Creates a team with an admin member and that member's first token. Only admins of the admin team may. */
  async createTeam(caller: Caller, name: string, adminName = 'admin'): Promise<{ team: Team; admin: Member } & IssuedToken> {
    if (!caller.team.isAdminTeam || caller.member.role !== MemberRole.admin) {
      throw new ForbiddenError('only admins of the "admin" team may create teams');
    }
    const teamName = parseName('team name', name);
    const memberName = parseName('member name', adminName);
    try {
      return await this.dataSource.transaction(async (manager) => {
        const team = await manager.getRepository(Team).save(manager.getRepository(Team).create({ name: teamName }));
        const admin = await manager
          .getRepository(Member)
          .save(manager.getRepository(Member).create({ teamId: team.id, name: memberName, role: MemberRole.admin }));
        const issued = await this.auth.issueToken(manager, admin);
        return { team, admin, ...issued };
      });
    } catch (error) {
      if (isUniqueViolation(error, 'teams_name_unique')) throw new ConflictError(`a team named "${teamName}" already exists`);
      throw error;
    }
  }

  /** Adds a member to a team; the caller must be an admin of that team. */
  async createMember(caller: Caller, teamId: string, name: string, role: MemberRole): Promise<Member> {
    teamId = parseId('teamId', teamId);
    await this.requireTeamAdmin(caller, teamId);
    const memberName = parseName('member name', name);
    try {
      return await this.dataSource.getRepository(Member).save(this.dataSource.getRepository(Member).create({ teamId, name: memberName, role }));
    } catch (error) {
      if (isUniqueViolation(error, 'members_team_name_unique')) {
        throw new ConflictError(`team already has a member named "${memberName}"`);
      }
      throw error;
    }
  }

  /** A new token for a member: the member itself or an admin of its team may ask. */
  async createApiToken(caller: Caller, memberId: string): Promise<IssuedToken> {
    const member = await this.memberCallerMayManage(caller, memberId);
    return this.dataSource.transaction((manager) => this.auth.issueToken(manager, member));
  }

  /** Revokes a token (idempotent): its owner or an admin of the owner's team may. */
  async revokeApiToken(caller: Caller, tokenId: string): Promise<ApiToken> {
    const repo = this.dataSource.getRepository(ApiToken);
    const token = await repo.findOneBy({ id: parseId('token id', tokenId) });
    if (!token) throw new NotFoundError(`no API token with id ${tokenId}`);
    await this.memberCallerMayManage(caller, token.memberId);
    if (!token.revokedAt) {
      token.revokedAt = new Date();
      await repo.update({ id: token.id }, { revokedAt: token.revokedAt });
    }
    return token;
  }

  members(teamId: string): Promise<Member[]> {
    return this.dataSource.getRepository(Member).find({ where: { teamId }, order: { createdAt: 'ASC' } });
  }

  team(teamId: string): Promise<Team> {
    return this.dataSource.getRepository(Team).findOneByOrFail({ id: teamId });
  }

  private async requireTeamAdmin(caller: Caller, teamId: string): Promise<void> {
    if (caller.team.id !== teamId) {
      const exists = await this.dataSource.getRepository(Team).existsBy({ id: teamId });
      if (!exists) throw new NotFoundError(`no team with id ${teamId}`);
      throw new ForbiddenError('you can only manage members of your own team');
    }
    if (caller.member.role !== MemberRole.admin) throw new ForbiddenError('only team admins may manage members');
  }

  private async memberCallerMayManage(caller: Caller, memberId: string): Promise<Member> {
    const member = await this.dataSource.getRepository(Member).findOneBy({ id: parseId('memberId', memberId) });
    if (!member || member.teamId !== caller.team.id) throw new NotFoundError(`no member with id ${memberId} in your team`);
    if (member.id !== caller.member.id && caller.member.role !== MemberRole.admin) {
      throw new ForbiddenError('only team admins may manage tokens of other members');
    }
    return member;
  }
}
