import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription, type SubscribeResolverData } from 'type-graphql';
import { injectable } from 'tsyringe';
import { MetricPoint } from '../core/records/metric-point.entity';
import { Pipeline } from '../core/records/pipeline.entity';
import { RunStage } from '../core/records/run-stage.entity';
import { Run } from '../core/records/run.entity';
import { RunProgress } from '../core/runs/run-progress';
import { RunService } from '../core/runs/run.service';
import type { CondenseContext } from './context';
import { asGraphQLError, runProgressStream, type SubscriptionContext } from './subscriptions';

@injectable()
@Resolver(() => Run)
export class RunResolver {
  constructor(private readonly runService: RunService) {}

  @Query(() => Run)
  run(@Arg('id', () => ID) id: string, @Ctx() ctx: CondenseContext): Promise<Run> {
    return this.runService.run(ctx.auth, id);
  }

  @Query(() => [Run], { description: "A project's runs, newest first (at most 200)" })
  runs(@Arg('projectId', () => ID) projectId: string, @Ctx() ctx: CondenseContext): Promise<Run[]> {
    return this.runService.runs(ctx.auth, projectId);
  }

  @Mutation(() => Run, {
    description: 'Cancels a run: a queued one at once, a running one within a few seconds (in whichever worker runs it); completed stages and their artifacts are kept',
  })
  cancelRun(@Arg('id', () => ID) id: string, @Ctx() ctx: CondenseContext): Promise<Run> {
    return this.runService.cancelRun(ctx.auth, id);
  }

  @FieldResolver(() => RunProgress, { nullable: true, description: 'Latest progress: stage, step/total, elapsed, ETA, latest losses' })
  progress(@Root() run: Run): RunProgress | null {
    return this.runService.progress(run);
  }

  @Subscription(() => RunProgress, {
    description: "A run's progress events as it executes, from any worker process; the stream ends when the run ends",
    subscribe: async ({ args, context }: SubscribeResolverData<unknown, { runId: string }, SubscriptionContext>) => {
      try {
        const run = await context.runs.run(context.auth, args.runId);
        return await runProgressStream(context.runs, run.id, async () => context.runs.progress(await context.runs.run(context.auth, run.id)));
      } catch (error) {
        throw asGraphQLError(error);
      }
    },
  })
  runProgress(@Arg('runId', () => ID) _runId: string, @Root() progress: RunProgress): RunProgress {
    return progress;
  }

  @FieldResolver(() => [RunStage])
  stages(@Root() run: Run): Promise<RunStage[]> {
    return this.runService.stages(run.id);
  }

  @FieldResolver(() => Pipeline)
  pipeline(@Root() run: Run, @Ctx() ctx: CondenseContext): Promise<Pipeline> {
    return this.runService.pipeline(ctx.auth, run.pipelineId);
  }

  @FieldResolver(() => [MetricPoint], { description: 'Reported metric points, by stage then step (at most 10,000)' })
  metricPoints(
    @Root() run: Run,
    @Arg('names', () => [String], { nullable: true }) names?: string[],
    @Arg('stageIndex', () => Int, { nullable: true }) stageIndex?: number,
  ): Promise<MetricPoint[]> {
    return this.runService.metricPoints(run.id, names ?? undefined, stageIndex ?? undefined);
  }
}
