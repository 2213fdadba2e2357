import { Extensions, Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { RUNS_VERSIONED } from '../core/history/runs-versioned';
import { GraphQLJSONObject } from 'graphql-scalars';
import { Run } from '../core/records/run.entity';
import { SeedGroup, MetricThresholdInput } from './history.types';

export const ParetoCostEnum = { macs: 'macs', latencyMs: 'latencyMs', params: 'params', bytesOnDisk: 'bytesOnDisk' } as const;
registerEnumType(ParetoCostEnum, { name: 'ParetoCost', description: 'The cost the Pareto front sets accuracy against' });

@Extensions(RUNS_VERSIONED)
@ObjectType()
export class StageWallTime {
  @Field(() => Int)
  stage!: number;

  @Field()
  plugin!: string;

  @Field(() => Float)
  wallMs!: number;
}

@Extensions(RUNS_VERSIONED)
@ObjectType({ description: 'One run in a side-by-side comparison' })
export class ComparisonRow {
  @Field(() => Run)
  run!: Run;

  @Field()
  signature!: string;

  @Field()
  signatureText!: string;

  @Field(() => GraphQLJSONObject, { description: 'Settings (seed, stages.i.plugin, stages.i.config.key) whose values differ between the compared runs' })
  differences!: Record<string, string>;

  @Field(() => Float, { nullable: true })
  top1!: number | null;

  @Field(() => Float, { nullable: true })
  params!: number | null;

  @Field(() => Float, { nullable: true })
  macs!: number | null;

  @Field(() => Float, { nullable: true })
  bytesOnDisk!: number | null;

  @Field(() => Float, { nullable: true })
  latencyMs!: number | null;

  @Field(() => String, { nullable: true })
  latencyBackend!: string | null;

  @Field(() => Int, { nullable: true })
  latencyBatchSize!: number | null;

  @Field(() => [StageWallTime])
  stageWallMs!: StageWallTime[];
}

@Extensions(RUNS_VERSIONED)
@ObjectType()
export class Comparison {
  @Field(() => [ComparisonRow])
  rows!: ComparisonRow[];

  @Field(() => [SeedGroup], { description: 'For each signature among the runs: all succeeded runs you may read with it, mean ± std' })
  groups!: SeedGroup[];
}

@InputType()
export class LeaderboardInput {
  @Field(() => [ID], { nullable: true })
  projectIds?: string[] | null;

  @Field(() => [ID], { nullable: true })
  teamIds?: string[] | null;

  @Field({ defaultValue: 'top1', description: 'Final metric to rank by, higher first' })
  metric!: string;

  @Field(() => [MetricThresholdInput], { nullable: true, description: 'e.g. [{ name: "params", max: 50000 }]' })
  constraints?: MetricThresholdInput[] | null;

  @Field(() => ParetoCostEnum, { defaultValue: 'macs' })
  paretoAgainst!: (typeof ParetoCostEnum)[keyof typeof ParetoCostEnum];

  @Field(() => Int, { defaultValue: 20, description: 'Entries to return (≤ 100)' })
  first!: number;
}

@Extensions(RUNS_VERSIONED)
@ObjectType()
export class LeaderboardEntry {
  @Field(() => Int, { nullable: true })
  rank!: number | null;

  @Field(() => Run)
  run!: Run;

  @Field(() => Float)
  value!: number;

  @Field(() => Float, { nullable: true })
  cost!: number | null;
}

@Extensions(RUNS_VERSIONED)
@ObjectType()
export class Leaderboard {
  @Field()
  metric!: string;

  @Field(() => ParetoCostEnum)
  paretoAgainst!: string;

  @Field(() => [LeaderboardEntry])
  entries!: LeaderboardEntry[];

  @Field(() => [LeaderboardEntry], { description: 'Runs no other candidate beats on both metric (higher) and cost (lower), cheapest first (≤ 100)' })
  paretoFront!: LeaderboardEntry[];
}
