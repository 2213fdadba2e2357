import type { ArtifactKind, CondensePlugin } from '../plugins/contracts';
import { artifactSatisfies } from '../plugins/contracts';
import type { StageSpec } from './pipeline-spec';

/** What a stage needs to run, after validation: the plugin and its full config (defaults merged). */
export interface PlannedStage {
  index: number;
  plugin: CondensePlugin;
  config: Record<string, unknown>;
}

/** A problem with a pipeline, found before anything runs. `stage` is the 0-based stage index. */
export interface PipelineProblem {
  stage?: number;
  code: 'UNKNOWN_PLUGIN' | 'PLUGIN_DISABLED' | 'INVALID_CONFIG' | 'MISSING_INPUT';
  message: string;
}

export class PipelineValidationError extends Error {
  constructor(readonly problems: PipelineProblem[]) {
    super(`pipeline is invalid: ${problems.map((p) => (p.stage === undefined ? p.message : `stage ${p.stage + 1}: ${p.message}`)).join('; ')}`);
    this.name = 'PipelineValidationError';
  }
}

/** The part of the plugin registry validation needs. */
export interface PluginLookup {
  has(name: string): boolean;
  get(name: string): CondensePlugin;
  list(): CondensePlugin[];
  validateConfig(name: string, config: unknown): object;
}

export interface PipelineValidationOptions {
  /** Plugins the project has enabled; undefined means every registered plugin may be used. */
  enabledPlugins?: ReadonlySet<string>;
  /** Whether real training data is available at the start (the pipeline names a dataset). */
  hasDataset: boolean;
}

/** Which artifact kinds are available after each stage, starting from a teacher (and a dataset). */
function initialArtifacts(hasDataset: boolean): ArtifactKind[] {
  return hasDataset ? ['model', 'dataset'] : ['model'];
}

/**
 * Checks a whole pipeline before it runs: every plugin known and enabled, every config valid,
 * and every stage's declared inputs produced by the teacher, the dataset or an earlier stage.
 * Returns every problem at once, so a person can fix them in one go.
 */
export function planPipeline(stages: StageSpec[], registry: PluginLookup, options: PipelineValidationOptions): PlannedStage[] {
  const problems: PipelineProblem[] = [];
  const planned: PlannedStage[] = [];
  const available = new Set<ArtifactKind>(initialArtifacts(options.hasDataset));
  const known = registry.list().map((p) => p.name).sort();

  stages.forEach((stage, index) => {
    if (!registry.has(stage.plugin)) {
      problems.push({ stage: index, code: 'UNKNOWN_PLUGIN', message: `unknown plugin "${stage.plugin}" (known: ${known.join(', ')})` });
      return;
    }
    if (options.enabledPlugins && !options.enabledPlugins.has(stage.plugin)) {
      problems.push({ stage: index, code: 'PLUGIN_DISABLED', message: `plugin "${stage.plugin}" is not enabled for this project; enable it with setPluginEnabled` });
    }
    const plugin = registry.get(stage.plugin);
    let config: Record<string, unknown> = {};
    try {
      config = registry.validateConfig(stage.plugin, stage.config) as Record<string, unknown>;
    } catch (err) {
      problems.push({ stage: index, code: 'INVALID_CONFIG', message: `config of "${stage.plugin}" is invalid: ${(err as Error).message}` });
    }
    for (const required of plugin.inputs) {
      if (![...available].some((kind) => artifactSatisfies(kind, required))) {
        problems.push({
          stage: index,
          code: 'MISSING_INPUT',
          message: `"${stage.plugin}" needs a ${required}, which neither the pipeline's inputs nor an earlier stage provide`,
        });
      }
    }
    available.add(plugin.output);
    planned.push({ index, plugin, config });
  });

  if (problems.length > 0) throw new PipelineValidationError(problems);
  return planned;
}
