import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { injectable } from 'tsyringe';
import { Pipeline } from '../core/records/pipeline.entity';
import { Run } from '../core/records/run.entity';
import { RunService } from '../core/runs/run.service';
import type { CondenseContext } from './context';
import { CreatePipelineInput } from './pipeline.input';

@injectable()
@Resolver(() => Pipeline)
export class PipelineResolver {
  constructor(private readonly runs: RunService) {}

  @Query(() => [Pipeline], { description: "A project's pipelines" })
  pipelines(@Arg('projectId', () => ID) projectId: string, @Ctx() ctx: CondenseContext): Promise<Pipeline[]> {
    return this.runs.pipelines(ctx.auth, projectId);
  }

  @Query(() => Pipeline)
  pipeline(@Arg('id', () => ID) id: string, @Ctx() ctx: CondenseContext): Promise<Pipeline> {
    return this.runs.pipeline(ctx.auth, id);
  }

  @Mutation(() => Pipeline, {
    description: 'Stores a pipeline after checking it: plugins known and enabled for the project, configs valid, each stage given its inputs',
  })
  createPipeline(@Arg('input') input: CreatePipelineInput, @Ctx() ctx: CondenseContext): Promise<Pipeline> {
    return this.runs.createPipeline(ctx.auth, { ...input, stages: input.stages.map((s) => ({ plugin: s.plugin, config: s.config ?? {} })) });
  }

  @Mutation(() => Run, { description: 'Queues a run of a pipeline for a worker; returns at once with the queued run unless wait is true' })
  async startRun(
    @Arg('pipelineId', () => ID) pipelineId: string,
    @Arg('seed', () => Int, { defaultValue: 0 }) seed: number,
    @Arg('wait', { defaultValue: false, description: 'Answer only when the run has ended (for short runs and scripts)' }) wait: boolean,
    @Ctx() ctx: CondenseContext,
    @Arg('checkpointEvery', () => Int, { nullable: true, description: 'Steps between in-stage checkpoints of long stages (default 200; kd checkpoints)' })
    checkpointEvery?: number,
  ): Promise<Run> {
    const run = await this.runs.startRun(ctx.auth, pipelineId, seed, { checkpointEvery: checkpointEvery ?? undefined });
    return wait ? this.runs.waitForRun(run.id) : run;
  }

  @FieldResolver(() => [Run], { name: 'runs', description: 'Runs of this pipeline, newest first' })
  async pipelineRuns(@Root() pipeline: Pipeline, @Ctx() ctx: CondenseContext): Promise<Run[]> {
    return (await this.runs.runs(ctx.auth, pipeline.projectId)).filter((r) => r.pipelineId === pipeline.id);
  }
}
