import { Arg, Ctx, ID, Int, Mutation, Query, Resolver } from 'type-graphql';
import { injectable } from 'tsyringe';
import { ModelService, type TrainingOptionsInput as TrainingOptions } from '../core/projects/model.service';
import { ProjectService } from '../core/projects/project.service';
import { ModelRecord } from '../core/records/model.entity';
import type { CondenseContext } from './context';
import { definedFields } from './input-values';
import { ExportedModel, ModelSpecInput, TrainingOptionsInput } from './model.input';

@injectable()
@Resolver(() => ModelRecord)
export class ModelResolver {
  constructor(
    private readonly modelService: ModelService,
    private readonly projectService: ProjectService,
  ) {}

  @Query(() => [ModelRecord])
  async models(@Arg('projectId', () => ID) projectId: string, @Ctx() ctx: CondenseContext): Promise<ModelRecord[]> {
    const project = await this.projectService.require(ctx.auth, projectId);
    return this.modelService.list(project.id);
  }

  @Query(() => ModelRecord)
  model(@Arg('id', () => ID) id: string, @Ctx() ctx: CondenseContext): Promise<ModelRecord> {
    return this.modelService.require(ctx.auth, id);
  }

  @Mutation(() => ExportedModel, {
    description: 'Writes a stored model as a TF.js LayersModel directory on the server’s file system (the path must not exist or be empty)',
  })
  exportModel(@Arg('id', () => ID) id: string, @Arg('path') path: string, @Ctx() ctx: CondenseContext): Promise<ExportedModel> {
    return this.modelService.exportModel(ctx.auth, id, path);
  }

  @Mutation(() => ModelRecord, { description: 'Imports a TF.js LayersModel directory (model.json + weights) from the server’s file system' })
  importModel(
    @Arg('projectId', () => ID) projectId: string,
    @Arg('name') name: string,
    @Arg('path') path: string,
    @Ctx() ctx: CondenseContext,
  ): Promise<ModelRecord> {
    return this.modelService.importModel(ctx.auth, projectId, name, path);
  }

  @Mutation(() => ModelRecord, {
    description: 'Uploads a TF.js LayersModel: model.json text and its weight files concatenated in manifest order, base64-encoded',
  })
  uploadModel(
    @Arg('projectId', () => ID) projectId: string,
    @Arg('name') name: string,
    @Arg('modelJson') modelJson: string,
    @Arg('weightsBase64') weightsBase64: string,
    @Ctx() ctx: CondenseContext,
  ): Promise<ModelRecord> {
    return this.modelService.uploadModel(ctx.auth, projectId, name, modelJson, weightsBase64);
  }

  @Mutation(() => ModelRecord, { description: 'Builds an untrained zoo model' })
  createZooModel(
    @Arg('projectId', () => ID) projectId: string,
    @Arg('name') name: string,
    @Arg('spec', () => ModelSpecInput) spec: ModelSpecInput,
    @Arg('seed', () => Int, { defaultValue: 0 }) seed: number,
    @Ctx() ctx: CondenseContext,
  ): Promise<ModelRecord> {
    return this.modelService.createZooModel(ctx.auth, projectId, name, definedFields(spec) as ModelSpecInput, seed);
  }

  @Mutation(() => ModelRecord, {
    description: 'Trains a zoo model on a registered dataset’s training split, evaluates it on the test split and stores it (runs in the request for now)',
  })
  trainModel(
    @Arg('projectId', () => ID) projectId: string,
    @Arg('name') name: string,
    @Arg('spec', () => ModelSpecInput) spec: ModelSpecInput,
    @Arg('datasetId', () => ID) datasetId: string,
    @Arg('options', () => TrainingOptionsInput, { nullable: true }) options: TrainingOptionsInput | null,
    @Ctx() ctx: CondenseContext,
  ): Promise<ModelRecord> {
    return this.modelService.trainModel(ctx.auth, projectId, name, definedFields(spec) as ModelSpecInput, datasetId, definedFields(options) as TrainingOptions);
  }
}
