import { Arg, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { injectable } from 'tsyringe';
import { PluginRegistry } from '../core/plugins/registry';
import { DatasetService } from '../core/projects/dataset.service';
import { ModelService } from '../core/projects/model.service';
import { PluginEnablementService } from '../core/projects/plugin-enablement.service';
import { ProjectService } from '../core/projects/project.service';
import { DatasetRecord } from '../core/records/dataset.entity';
import { ModelRecord } from '../core/records/model.entity';
import { Project } from '../core/records/project.entity';
import { Team } from '../core/records/team.entity';
import { TeamService } from '../core/auth/team.service';
import type { CondenseContext } from './context';
import { pluginStateView } from './plugin.resolver';
import { ProjectPluginState } from './plugin.type';

@injectable()
@Resolver(() => Project)
export class ProjectResolver {
  constructor(
    private readonly projectService: ProjectService,
    private readonly enablement: PluginEnablementService,
    private readonly registry: PluginRegistry,
    private readonly teams: TeamService,
    private readonly datasetService: DatasetService,
    private readonly modelService: ModelService,
  ) {}

  @Query(() => [Project], { description: "Your team's projects" })
  projects(@Ctx() ctx: CondenseContext): Promise<Project[]> {
    return this.projectService.list(ctx.auth);
  }

  @Query(() => Project)
  project(@Arg('id', () => ID) id: string, @Ctx() ctx: CondenseContext): Promise<Project> {
    return this.projectService.require(ctx.auth, id);
  }

  @Mutation(() => Project, { description: 'Creates a project in your team (names are unique per team)' })
  createProject(@Arg('name') name: string, @Ctx() ctx: CondenseContext): Promise<Project> {
    return this.projectService.create(ctx.auth, name);
  }

  @Mutation(() => Project, { description: "Lets other teams compare their runs with this project's runs" })
  setProjectSharedForComparison(
    @Arg('projectId', () => ID) projectId: string,
    @Arg('shared') shared: boolean,
    @Ctx() ctx: CondenseContext,
  ): Promise<Project> {
    return this.projectService.setSharedForComparison(ctx.auth, projectId, shared);
  }

  @FieldResolver(() => [ProjectPluginState], { description: 'Every registered plugin with whether this project enabled it' })
  async plugins(@Root() project: Project): Promise<ProjectPluginState[]> {
    const states = await this.enablement.states(project.id);
    return states.map((s) => pluginStateView(this.registry, s));
  }

  @FieldResolver(() => Team)
  team(@Root() project: Project): Promise<Team> {
    return this.teams.team(project.teamId);
  }

  @FieldResolver(() => [DatasetRecord])
  datasets(@Root() project: Project): Promise<DatasetRecord[]> {
    return this.datasetService.list(project.id);
  }

  @FieldResolver(() => [ModelRecord])
  models(@Root() project: Project): Promise<ModelRecord[]> {
    return this.modelService.list(project.id);
  }
}
