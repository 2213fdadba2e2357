import type { NonEmptyArray } from 'type-graphql';
import { CompareResolver } from './compare.resolver';
import { DatasetResolver } from './dataset.resolver';
import { RunHistoryResolver, RunStageHistoryResolver } from './history.resolver';
import { ModelResolver } from './model.resolver';
import { PipelineResolver } from './pipeline.resolver';
import { PluginResolver } from './plugin.resolver';
import { ProjectResolver } from './project.resolver';
import { RunResolver } from './run.resolver';
import { MemberResolver, TeamResolver } from './team.resolver';

/** Every resolver class of the schema; each is resolved from the app's container. */
export const RESOLVERS: NonEmptyArray<Function> = [
  MemberResolver,
  TeamResolver,
  ProjectResolver,
  PluginResolver,
  DatasetResolver,
  ModelResolver,
  PipelineResolver,
  RunResolver,
  RunHistoryResolver,
  RunStageHistoryResolver,
  CompareResolver,
];
