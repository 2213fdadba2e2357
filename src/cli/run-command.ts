import { SingleBar, Presets } from 'cli-progress';
import type { DependencyContainer } from 'tsyringe';
import { DataSource } from 'typeorm';
import type { Caller } from '../core/auth/auth.service';
import { ADMIN_TEAM_NAME } from '../core/auth/auth.service';
import { describeDatasetSource } from '../core/data/catalog';
import { DatasetService } from '../core/projects/dataset.service';
import { ModelService } from '../core/projects/model.service';
import { PluginEnablementService } from '../core/projects/plugin-enablement.service';
import { ProjectService } from '../core/projects/project.service';
import { DatasetRecord } from '../core/records/dataset.entity';
import { MemberRole } from '../core/records/enums';
import { Member } from '../core/records/member.entity';
import { ModelRecord } from '../core/records/model.entity';
import { Project } from '../core/records/project.entity';
import type { Run } from '../core/records/run.entity';
import { Team } from '../core/records/team.entity';
import { RunService } from '../core/runs/run.service';
import type { PipelineFile } from './pipeline-file';
import { formatTable } from '../core/report/text-table';

export interface RunCommandOutput {
  run: Run;
  table: string;
}

/**
 * Runs a pipeline file as the local admin: finds or creates the project (enabling the plugins the file
 * uses), registers the dataset and the teacher unless the project has them, then runs the pipeline
 * with a progress bar and returns the results table.
 */
export async function runPipelineFile(container: DependencyContainer, spec: PipelineFile, out: NodeJS.WriteStream = process.stderr): Promise<RunCommandOutput> {
  const caller = await localAdmin(container.resolve(DataSource));
  const project = await findOrCreateProject(container, caller, spec.project);
  const enablement = container.resolve(PluginEnablementService);
  for (const plugin of new Set(spec.stages.map((s) => s.plugin))) {
    await enablement.setEnabled(caller, project.id, plugin, true);
  }
  const dataset = await findOrRegisterDataset(container, caller, project, spec);
  const teacher = await findOrMakeTeacher(container, caller, project, dataset, spec, out);

  const runs = container.resolve(RunService);
  const pipeline = await runs.createPipeline(caller, {
    projectId: project.id,
    name: `${spec.name} ${new Date().toISOString()}`,
    teacherModelId: teacher.id,
    datasetId: dataset.id,
    stages: spec.stages,
  });
  const bar = new SingleBar({ format: ' {stage} [{bar}] {value}/{total} {metrics}', hideCursor: true, stream: out }, Presets.shades_classic);
  let barStage = -1;
  let runId: string | undefined;
  // Progress events come through Postgres NOTIFY, from whichever worker executes the run.
  const unsubscribe = runs.onProgress((event) => {
    if (event.runId !== runId || event.stageIndex === null || event.total === 0) return;
    const metrics = Object.entries(event.metrics)
      .slice(0, 3)
      .map(([k, v]) => `${k}=${formatNumber(v)}`)
      .join(' ');
    const stage = `stage ${event.stageIndex + 1}/${spec.stages.length} ${event.plugin}`;
    if (event.stageIndex !== barStage) {
      if (barStage >= 0) bar.stop();
      bar.start(event.total, event.step, { stage, metrics });
      barStage = event.stageIndex;
    } else {
      bar.setTotal(event.total);
      bar.update(event.step, { stage, metrics });
    }
  });
  const run = await runs.startRun(caller, pipeline.id, spec.seed);
  runId = run.id;
  let finished: Run;
  try {
    finished = await runs.waitForRun(run.id);
  } finally {
    unsubscribe();
    if (barStage >= 0) bar.stop();
  }
  return { run: finished, table: await resultsTable(runs, finished) };
}

async function localAdmin(dataSource: DataSource): Promise<Caller> {
  const team = await dataSource.getRepository(Team).findOneByOrFail({ name: ADMIN_TEAM_NAME });
  const member = await dataSource.getRepository(Member).findOneOrFail({ where: { teamId: team.id, role: MemberRole.admin }, order: { createdAt: 'ASC' } });
  return { member, team, tokenId: 'cli' };
}

async function findOrCreateProject(container: DependencyContainer, caller: Caller, name: string): Promise<Project> {
  const existing = await container.resolve(DataSource).getRepository(Project).findOneBy({ teamId: caller.team.id, name });
  return existing ?? container.resolve(ProjectService).create(caller, name);
}

async function findOrRegisterDataset(container: DependencyContainer, caller: Caller, project: Project, spec: PipelineFile): Promise<DatasetRecord> {
  const name = describeDatasetSource(spec.dataset).slice(0, 100);
  const existing = await container.resolve(DataSource).getRepository(DatasetRecord).findOneBy({ projectId: project.id, name });
  return existing ?? container.resolve(DatasetService).register(caller, project.id, name, spec.dataset);
}

async function findOrMakeTeacher(
  container: DependencyContainer,
  caller: Caller,
  project: Project,
  dataset: DatasetRecord,
  spec: PipelineFile,
  out: NodeJS.WriteStream,
): Promise<ModelRecord> {
  const models = container.resolve(ModelService);
  const teacher = spec.teacher;
  const name =
    teacher.name ??
    ('modelDir' in teacher
      ? `teacher ${teacher.modelDir}`
      : `teacher ${teacher.architecture} w${teacher.width}${teacher.depth ? ` d${teacher.depth}` : ''} on ${dataset.name} ${JSON.stringify(teacher.training)}`).slice(0, 100);
  const existing = await container.resolve(DataSource).getRepository(ModelRecord).findOneBy({ projectId: project.id, name });
  if (existing) {
    out.write(`teacher: reusing "${existing.name}" (top-1 ${formatNumber(Number(existing.metrics.top1 ?? NaN))})\n`);
    return existing;
  }
  if ('modelDir' in teacher) return models.importModel(caller, project.id, name, teacher.modelDir);
  out.write(`teacher: training ${teacher.architecture} on ${dataset.name} (${teacher.training.epochs ?? 1} epochs)\n`);
  const bar = new SingleBar({ format: ' teacher [{bar}] {value}/{total} loss={loss}', hideCursor: true, stream: out }, Presets.shades_classic);
  let started = false;
  let trained: ModelRecord;
  try {
    trained = await models.trainModel(
      caller,
      project.id,
      name,
      { architecture: teacher.architecture, width: teacher.width, depth: teacher.depth },
      dataset.id,
      teacher.training,
      (step, total, metrics) => {
        if (!started) bar.start(total, 0, { loss: '' });
        started = true;
        if (step % 10 === 0 || step === total) bar.update(step, { loss: formatNumber(metrics.loss) });
      },
    );
  } finally {
    if (started) bar.stop();
  }
  out.write(`teacher: top-1 ${formatNumber(Number(trained.metrics.top1))} in ${formatNumber(Number(trained.metrics.trainMs) / 1000)} s\n`);
  return trained;
}

async function resultsTable(runs: RunService, run: Run): Promise<string> {
  const stages = await runs.stages(run.id);
  const rows: string[][] = stages.map((s) => [
    String(s.index + 1),
    s.plugin,
    s.status,
    s.wallMs == null ? '' : `${(s.wallMs / 1000).toFixed(1)} s`,
    Object.entries(s.metrics ?? {})
      .filter(([, v]) => typeof v === 'number')
      .map(([k, v]) => `${k}=${formatNumber(v as number)}`)
      .join(' '),
  ]);
  const lines = [formatTable(['#', 'plugin', 'status', 'wall', 'metrics'], rows)];
  lines.push(`run ${run.id}: ${run.status}${run.error ? ` (${run.errorCode}: ${run.error})` : ''}`);
  if (run.finalMetrics) {
    const fm = Object.entries(run.finalMetrics).filter(([, v]) => typeof v === 'number' || typeof v === 'string');
    lines.push(formatTable(['final metric', 'value'], fm.map(([k, v]) => [k, typeof v === 'number' ? formatNumber(v) : String(v)])));
  }
  return lines.join('\n');
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4);
}
