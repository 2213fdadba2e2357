import fs from 'node:fs';
import path from 'node:path';
import { DataSource, IsNull, type EntityManager } from 'typeorm';
import { inject, injectable } from 'tsyringe';
import type { CondenseConfig } from '../config/config';
import type { Logger } from '../logging/logger';
import { CONFIG, LOGGER } from '../app/tokens';
import { UnauthenticatedError } from '../errors';
import { ApiToken } from '../records/api-token.entity';
import { MemberRole } from '../records/enums';
import { Member } from '../records/member.entity';
import { Team } from '../records/team.entity';
import { preparedQuery } from '../db/prepared-query';
import { generateToken, hashToken, TOKEN_PREFIX } from './tokens';

/** Who is calling: resolved from a bearer token once per request. */
export interface Caller {
  member: Member;
  team: Team;
  tokenId: string;
  /**
   * The runs version (VersionedCache) read together with the token, for a caller authenticated for
   * one request; absent for long-lived connections, whose reads fetch the current version each time.
   */
  runsVersion?: string;
}

export const ADMIN_TEAM_NAME = 'admin';
export const ADMIN_TOKEN_FILE = 'admin-token';
/** lastUsedAt is written at most this often per token, so reads do not turn into writes. */
const LAST_USED_RESOLUTION_MS = 60_000;
/** Serialises first-start set-up between servers starting at once on one database. */
const BOOTSTRAP_LOCK_KEY = 7_364_201_994;

interface AuthRow {
  token_id: string;
  prefix: string;
  last_used_at: Date | null;
  revoked_at: Date | null;
  member_id: string;
  team_id: string;
  member_name: string;
  role: MemberRole;
  member_created_at: Date;
  team_name: string;
  is_admin_team: boolean;
  team_created_at: Date;
  runs_version: string | null;
}

@injectable()
export class AuthService {
  constructor(
    private readonly dataSource: DataSource,
    @inject(CONFIG) private readonly config: CondenseConfig,
    @inject(LOGGER) private readonly log: Logger,
  ) {}

  /** The caller a token belongs to; UnauthenticatedError when it is unknown or revoked. */
  async authenticate(token: string): Promise<Caller> {
    if (!token.startsWith(TOKEN_PREFIX)) {
      throw new UnauthenticatedError(`API tokens start with "${TOKEN_PREFIX}"; send one as "Authorization: Bearer <token>"`);
    }
    // One round trip: the token, its member, the member's team, and the runs version for this request's cached reads.
    const rows = await preparedQuery<AuthRow>(
      this.dataSource,
      'condense-authenticate',
      `SELECT t.id AS token_id, t.prefix, t.last_used_at, t.revoked_at,
              m.id AS member_id, m.team_id, m.name AS member_name, m.role, m.created_at AS member_created_at,
              tm.name AS team_name, tm.is_admin_team, tm.created_at AS team_created_at,
              (SELECT version::text FROM change_counters WHERE name = 'runs') AS runs_version
         FROM api_tokens t JOIN members m ON m.id = t.member_id JOIN teams tm ON tm.id = m.team_id
        WHERE t.token_hash = $1`,
      [hashToken(token)],
    );
    const row = rows[0];
    if (!row) throw new UnauthenticatedError('unknown API token; ask a team admin for a new one (createApiToken)');
    if (row.revoked_at) throw new UnauthenticatedError(`API token ${row.prefix}… was revoked at ${row.revoked_at.toISOString()}`);
    const member = Object.assign(new Member(), { id: row.member_id, teamId: row.team_id, name: row.member_name, role: row.role, createdAt: row.member_created_at });
    const team = Object.assign(new Team(), { id: row.team_id, name: row.team_name, isAdminTeam: row.is_admin_team, createdAt: row.team_created_at });
    const now = Date.now();
    if (!row.last_used_at || now - row.last_used_at.getTime() > LAST_USED_RESOLUTION_MS) {
      await this.dataSource.getRepository(ApiToken).update({ id: row.token_id }, { lastUsedAt: new Date(now) });
    }
    return { member, team, tokenId: row.token_id, runsVersion: row.runs_version ?? undefined };
  }

  /** Creates a token for `member` inside `manager`'s transaction; returns the row and the secret (shown once). */
  async issueToken(manager: EntityManager, member: Member): Promise<{ apiToken: ApiToken; token: string }> {
    const fresh = generateToken();
    const apiToken = await manager.getRepository(ApiToken).save(
      manager.getRepository(ApiToken).create({ memberId: member.id, tokenHash: fresh.hash, prefix: fresh.prefix }),
    );
    return { apiToken, token: fresh.token };
  }

  /**
   * On the first start (no team at all) creates the `admin` team, its admin member and a token, and
   * writes the token to `<dataDir>/admin-token` (mode 600). Returns the file path when it did so.
   */
  async ensureAdminToken(): Promise<string | undefined> {
    const file = path.join(this.config.dataDir, ADMIN_TOKEN_FILE);
    const token = await this.dataSource.transaction(async (manager) => {
      await manager.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK_KEY]);
      if ((await manager.getRepository(Team).count()) > 0) return undefined;
      const team = await manager.getRepository(Team).save(manager.getRepository(Team).create({ name: ADMIN_TEAM_NAME, isAdminTeam: true }));
      const member = await manager
        .getRepository(Member)
        .save(manager.getRepository(Member).create({ teamId: team.id, name: 'admin', role: MemberRole.admin }));
      const issued = await this.issueToken(manager, member);
      // Written inside the transaction: if writing fails, no admin exists whose token nobody has.
      fs.mkdirSync(this.config.dataDir, { recursive: true });
      fs.writeFileSync(file, issued.token + '\n', { mode: 0o600 });
      fs.chmodSync(file, 0o600);
      return issued.token;
    });
    if (token === undefined) return undefined;
    this.log.info({ file }, 'first start: created team "admin" and wrote its admin API token to this file');
    return file;
  }

  /** Active (not revoked) tokens of a member. */
  activeTokens(memberId: string): Promise<ApiToken[]> {
    return this.dataSource.getRepository(ApiToken).find({ where: { memberId, revokedAt: IsNull() }, order: { createdAt: 'ASC' } });
  }
}
