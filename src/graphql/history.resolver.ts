import { Arg, Ctx, Extensions, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { RUNS_VERSIONED } from '../core/history/runs-versioned';
import { injectable } from 'tsyringe';
import { ArtifactAccessService } from '../core/history/artifact-access.service';
import { HISTORY_PAGE_DEFAULT, HistoryService } from '../core/history/history.service';
import { RunStage } from '../core/records/run-stage.entity';
import { Run } from '../core/records/run.entity';
import type { CondenseContext } from './context';
import { MetricSeries, RunConnection, RunHistoryFilter, RunImage, SeedGroup } from './history.types';

@injectable()
@Resolver(() => Run)
export class RunHistoryResolver {
  constructor(
    private readonly history: HistoryService,
    private readonly artifacts: ArtifactAccessService,
  ) {}

  @Extensions(RUNS_VERSIONED)
  @Query(() => RunConnection, {
    description: "Runs of your team's projects and of projects other teams share for comparison, newest first; page with first (≤ 100) and after",
  })
  async runHistory(
    @Ctx() ctx: CondenseContext,
    @Arg('filter', () => RunHistoryFilter, { nullable: true }) filter?: RunHistoryFilter,
    @Arg('first', () => Int, { defaultValue: HISTORY_PAGE_DEFAULT }) first?: number,
    @Arg('after', () => String, { nullable: true }) after?: string,
  ): Promise<RunConnection> {
    const page = await this.history.runHistory(ctx.auth, filter ?? {}, first, after);
    return { edges: page.edges, pageInfo: { hasNextPage: page.hasNextPage, endCursor: page.endCursor } };
  }

  @Query(() => MetricSeries, { description: "A metric's points for a run, downsampled to about maxPoints buckets (min/mean/max) for long runs" })
  async runMetricSeries(
    @Arg('runId', () => ID) runId: string,
    @Arg('name') name: string,
    @Ctx() ctx: CondenseContext,
    @Arg('stageIndex', () => Int, { nullable: true }) stageIndex?: number,
    @Arg('maxPoints', () => Int, { defaultValue: 500 }) maxPoints?: number,
  ): Promise<MetricSeries> {
    const run = await this.history.visibleRun(ctx.auth, runId);
    return this.history.metricSeries(run.id, name, stageIndex, maxPoints);
  }

  @Query(() => [SeedGroup], { description: "Runs sharing this pipeline's signature(s), grouped, with mean ± std over seeds" })
  seedGroup(@Arg('pipelineId', () => ID) pipelineId: string, @Ctx() ctx: CondenseContext): Promise<SeedGroup[]> {
    return this.history.seedGroupsOfPipeline(ctx.auth, pipelineId);
  }

  @Mutation(() => Run, { description: "Starts a new run of a run's pipeline with the same seed (your team's runs only)" })
  rerun(@Arg('runId', () => ID) runId: string, @Ctx() ctx: CondenseContext): Promise<Run> {
    return this.history.rerun(ctx.auth, runId);
  }

  @Extensions(RUNS_VERSIONED)
  @FieldResolver(() => String, { description: 'Pipeline signature: hash of the ordered stage kinds, plugins, versions and key parameters' })
  signature(@Root() run: Run): string {
    // Stored with the run since it was created; computed only for rows written without one.
    return run.signature ?? this.history.signatureOf(run).hash;
  }

  @Extensions(RUNS_VERSIONED)
  @FieldResolver(() => String, { description: 'The pipeline signature in readable form' })
  signatureText(@Root() run: Run): string {
    return run.signatureText ?? this.history.signatureOf(run).text;
  }

  @FieldResolver(() => [RunImage], { description: 'Pictures the run made (at most 1,000)' })
  images(@Root() run: Run): Promise<RunImage[]> {
    return this.artifacts.imagesOfRun(run.id);
  }

  @FieldResolver(() => MetricSeries, { description: 'A metric series of this run (see runMetricSeries)' })
  metricSeries(
    @Root() run: Run,
    @Arg('name') name: string,
    @Arg('stageIndex', () => Int, { nullable: true }) stageIndex?: number,
    @Arg('maxPoints', () => Int, { defaultValue: 500 }) maxPoints?: number,
  ): Promise<MetricSeries> {
    return this.history.metricSeries(run.id, name, stageIndex, maxPoints);
  }
}

@injectable()
@Resolver(() => RunStage)
export class RunStageHistoryResolver {
  constructor(
    private readonly history: HistoryService,
    private readonly artifacts: ArtifactAccessService,
  ) {}

  @FieldResolver(() => [RunImage], { description: 'Pictures this stage made' })
  images(@Root() stage: RunStage): Promise<RunImage[]> {
    return this.artifacts.imagesOfRun(stage.runId, stage.index);
  }

  @FieldResolver(() => MetricSeries, { description: 'The stage\'s "loss" series, downsampled to about maxPoints' })
  lossCurve(@Root() stage: RunStage, @Arg('maxPoints', () => Int, { defaultValue: 500 }) maxPoints?: number): Promise<MetricSeries> {
    return this.history.metricSeries(stage.runId, 'loss', stage.index, maxPoints);
  }
}
