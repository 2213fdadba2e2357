import { Extensions, Field, Float, ID, InputType, Int, ObjectType } from 'type-graphql';
import { RUNS_VERSIONED } from '../core/history/runs-versioned';
import { RunStatus } from '../core/records/enums';
import { Run } from '../core/records/run.entity';

@InputType({ description: 'A bound on a final metric (top1, params, macs, bytesOnDisk, latencyMs or any numeric final metric)' })
export class MetricThresholdInput {
  @Field()
  name!: string;

  @Field(() => Float, { nullable: true })
  min?: number | null;

  @Field(() => Float, { nullable: true })
  max?: number | null;
}

@InputType()
export class RunHistoryFilter {
  @Field(() => [ID], { nullable: true })
  projectIds?: string[] | null;

  @Field(() => [ID], { nullable: true })
  teamIds?: string[] | null;

  @Field(() => [String], { nullable: true, description: 'Runs with a stage of any of these plugins' })
  plugins?: string[] | null;

  @Field(() => [RunStatus], { nullable: true })
  statuses?: RunStatus[] | null;

  @Field(() => Date, { nullable: true })
  createdAfter?: Date | null;

  @Field(() => Date, { nullable: true })
  createdBefore?: Date | null;

  @Field(() => [MetricThresholdInput], { nullable: true, description: 'Every threshold must hold' })
  metrics?: MetricThresholdInput[] | null;

  @Field(() => String, { nullable: true, description: 'Pipeline signature hash' })
  signature?: string | null;
}

@Extensions(RUNS_VERSIONED)
@ObjectType()
export class PageInfo {
  @Field()
  hasNextPage!: boolean;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}

@Extensions(RUNS_VERSIONED)
@ObjectType()
export class RunEdge {
  @Field()
  cursor!: string;

  @Field(() => Run)
  node!: Run;
}

@Extensions(RUNS_VERSIONED)
@ObjectType()
export class RunConnection {
  @Field(() => [RunEdge])
  edges!: RunEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@ObjectType({ description: 'One point of a metric series; above maxPoints, a bucket of consecutive points' })
export class SeriesPoint {
  @Field(() => Int)
  stageIndex!: number;

  @Field(() => Int, { description: 'First step covered' })
  step!: number;

  @Field(() => Int, { description: 'Last step covered' })
  stepEnd!: number;

  @Field(() => Float)
  min!: number;

  @Field(() => Float)
  mean!: number;

  @Field(() => Float)
  max!: number;

  @Field(() => Int, { description: 'Points in the bucket' })
  count!: number;
}

@ObjectType()
export class MetricSeries {
  @Field()
  name!: string;

  @Field(() => Int, { description: 'Points stored' })
  totalPoints!: number;

  @Field({ description: 'True when points were bucketed (min/mean/max per bucket)' })
  downsampled!: boolean;

  @Field(() => [SeriesPoint])
  points!: SeriesPoint[];
}

@ObjectType({ description: 'A picture a run made (PNG grid), served at url by the API server with the same bearer token' })
export class RunImage {
  @Field(() => ID)
  id!: string;

  @Field({ description: 'Path on the API server: GET it with "Authorization: Bearer <token>"' })
  url!: string;

  @Field(() => Int, { nullable: true })
  stageIndex!: number | null;

  @Field()
  mediaType!: string;

  @Field(() => Int)
  bytes!: number;
}

@Extensions(RUNS_VERSIONED)
@ObjectType()
export class MetricStat {
  @Field()
  metric!: string;

  @Field(() => Float, { nullable: true })
  mean!: number | null;

  @Field(() => Float, { nullable: true, description: 'Sample standard deviation (n − 1); null below 2 values' })
  std!: number | null;

  @Field(() => Int)
  n!: number;
}

@Extensions(RUNS_VERSIONED)
@ObjectType({ description: 'Succeeded runs sharing a pipeline signature (different seeds), with mean ± std of their final metrics' })
export class SeedGroup {
  @Field()
  signature!: string;

  @Field()
  signatureText!: string;

  @Field(() => Int)
  runCount!: number;

  @Field(() => [Float])
  seeds!: number[];

  @Field(() => [ID], { description: 'Newest first, at most 100' })
  runIds!: string[];

  @Field(() => [MetricStat])
  stats!: MetricStat[];
}

