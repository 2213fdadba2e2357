import { ApiToken } from '../records/api-token.entity';
import { Artifact } from '../records/artifact.entity';
import { DatasetRecord } from '../records/dataset.entity';
import { Member } from '../records/member.entity';
import { MetricPoint } from '../records/metric-point.entity';
import { ModelRecord } from '../records/model.entity';
import { Pipeline } from '../records/pipeline.entity';
import { ProjectPlugin } from '../records/project-plugin.entity';
import { Project } from '../records/project.entity';
import { RunCheckpoint } from '../records/run-checkpoint.entity';
import { RunStage } from '../records/run-stage.entity';
import { Run } from '../records/run.entity';
import { Team } from '../records/team.entity';
import { Initial1764000000000 } from '../../../migrations/1764000000000-initial';
import { History1764200000000 } from '../../../migrations/1764200000000-history';
import { DurableRuns1764100000000 } from '../../../migrations/1764100000000-durable-runs';
import { ChangeCounters1764300000000 } from '../../../migrations/1764300000000-change-counters';
import { ChangeCounter } from '../records/change-counter.entity';

/** Every entity class, listed explicitly (no globs: the list is the same under ts-jest, tsc and node). */
export const ENTITIES = [
  Team,
  Member,
  ApiToken,
  Project,
  ProjectPlugin,
  Artifact,
  DatasetRecord,
  ModelRecord,
  Pipeline,
  Run,
  RunStage,
  MetricPoint,
  RunCheckpoint,
  ChangeCounter,
];

/** Migrations in the order they run. Append new ones; never reorder or edit one that has shipped. */
export const MIGRATIONS = [Initial1764000000000, DurableRuns1764100000000, History1764200000000, ChangeCounters1764300000000];
