import { Arg, Ctx, ID, Mutation, Query, Resolver } from 'type-graphql';
import { injectable } from 'tsyringe';
import { DatasetService } from '../core/projects/dataset.service';
import { ProjectService } from '../core/projects/project.service';
import { DatasetRecord } from '../core/records/dataset.entity';
import type { CondenseContext } from './context';
import { DatasetSourceInput } from './dataset.input';
import { definedFields } from './input-values';

@injectable()
@Resolver(() => DatasetRecord)
export class DatasetResolver {
  constructor(
    private readonly datasetService: DatasetService,
    private readonly projectService: ProjectService,
  ) {}

  @Mutation(() => DatasetRecord, { description: 'Checks a dataset source, loads it to count and hash it, and records it in the project' })
  registerDataset(
    @Arg('projectId', () => ID) projectId: string,
    @Arg('name') name: string,
    @Arg('source', () => DatasetSourceInput) source: DatasetSourceInput,
    @Ctx() ctx: CondenseContext,
  ): Promise<DatasetRecord> {
    return this.datasetService.register(ctx.auth, projectId, name, definedFields(source));
  }

  @Query(() => [DatasetRecord])
  async datasets(@Arg('projectId', () => ID) projectId: string, @Ctx() ctx: CondenseContext): Promise<DatasetRecord[]> {
    const project = await this.projectService.require(ctx.auth, projectId);
    return this.datasetService.list(project.id);
  }

  @Query(() => DatasetRecord)
  dataset(@Arg('id', () => ID) id: string, @Ctx() ctx: CondenseContext): Promise<DatasetRecord> {
    return this.datasetService.require(ctx.auth, id);
  }
}
