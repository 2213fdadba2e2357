import { DataSource } from 'typeorm';
import { injectable } from 'tsyringe';
import type { Caller } from '../auth/auth.service';
import { parseId, parseName } from '../app/validation';
import { isUniqueViolation } from '../db/pg-errors';
import { ConflictError, ForbiddenError, NotFoundError } from '../errors';
import { MemberRole } from '../records/enums';
import { Project } from '../records/project.entity';

/** Projects of a team. A caller sees and changes only its own team's projects. */
@injectable()
export class ProjectService {
  constructor(private readonly dataSource: DataSource) {}

  list(caller: Caller): Promise<Project[]> {
    return this.dataSource.getRepository(Project).find({ where: { teamId: caller.team.id }, order: { createdAt: 'ASC' } });
  }

  /** The project, if it belongs to the caller's team; NOT_FOUND when there is none, FORBIDDEN when it is another team's. */
  async require(caller: Caller, projectId: string): Promise<Project> {
    const project = await this.dataSource.getRepository(Project).findOneBy({ id: parseId('projectId', projectId) });
    if (!project) throw new NotFoundError(`no project with id ${projectId}`);
    if (project.teamId !== caller.team.id) throw new ForbiddenError(`project ${projectId} belongs to another team`);
    return project;
  }

  async create(caller: Caller, name: string): Promise<Project> {
    const projectName = parseName('project name', name);
    const repo = this.dataSource.getRepository(Project);
    try {
      return await repo.save(repo.create({ teamId: caller.team.id, name: projectName }));
    } catch (error) {
      if (isUniqueViolation(error, 'projects_team_name_unique')) {
        throw new ConflictError(`your team already has a project named "${projectName}"`);
      }
      throw error;
    }
  }

  /** Shares (or stops sharing) a project's runs with other teams for comparison. */
  async setSharedForComparison(caller: Caller, projectId: string, shared: boolean): Promise<Project> {
    const project = await this.require(caller, projectId);
    if (caller.member.role !== MemberRole.admin) {
      throw new ForbiddenError(`only an admin of your team may change whether project ${projectId} is shared for comparison`);
    }
    project.sharedForComparison = shared;
    await this.dataSource.getRepository(Project).update({ id: project.id }, { sharedForComparison: shared });
    return project;
  }
}
