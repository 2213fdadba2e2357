import { PluginRegistry } from '../../src/core/plugins/registry';
import { planPipeline, PipelineValidationError } from '../../src/core/pipelines/pipeline-validation';
import { stageSeed } from '../../src/core/pipelines/pipeline-executor';

const registry = new PluginRegistry().load();

function problemsOf(fn: () => unknown) {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PipelineValidationError);
    return (error as PipelineValidationError).problems;
  }
  throw new Error('expected the pipeline to be refused');
}

test('a valid pipeline is planned with every default filled in', () => {
  const planned = planPipeline(
    [
      { plugin: 'noise', config: { count: 100 } },
      { plugin: 'kd', config: {} },
      { plugin: 'magnitude', config: { sparsity: 0.8 } },
    ],
    registry,
    { hasDataset: false },
  );
  expect(planned.map((s) => s.plugin.name)).toEqual(['noise', 'kd', 'magnitude']);
  expect(planned[0].config).toMatchObject({ count: 100, batchSize: 256 });
  expect(planned[1].config).toMatchObject({ temperature: 4, alpha: 0.9 });
  expect(planned[2].config).toMatchObject({ sparsity: 0.8, schedule: 'one-shot' });
});

test('every problem is reported at once, with its stage', () => {
  const problems = problemsOf(() =>
    planPipeline(
      [
        { plugin: 'nope', config: {} },
        { plugin: 'kd', config: { alpha: 2 } },
        { plugin: 'magnitude', config: {} },
      ],
      registry,
      { hasDataset: true, enabledPlugins: new Set(['kd']) },
    ),
  );
  expect(problems).toEqual([
    expect.objectContaining({ stage: 0, code: 'UNKNOWN_PLUGIN' }),
    expect.objectContaining({ stage: 1, code: 'INVALID_CONFIG' }),
    expect.objectContaining({ stage: 2, code: 'PLUGIN_DISABLED' }),
  ]);
  expect(problems[1].message).toMatch(/alpha/);
});

test('distillation without a dataset or an earlier synthesis stage misses its input', () => {
  const problems = problemsOf(() => planPipeline([{ plugin: 'kd', config: {} }], registry, { hasDataset: false }));
  expect(problems).toEqual([expect.objectContaining({ stage: 0, code: 'MISSING_INPUT' })]);
  expect(problems[0].message).toMatch(/needs a dataset/);
  // The same stage after a synthesis stage, or with real data, is fine.
  expect(() => planPipeline([{ plugin: 'noise', config: {} }, { plugin: 'kd', config: {} }], registry, { hasDataset: false })).not.toThrow();
  expect(() => planPipeline([{ plugin: 'kd', config: {} }], registry, { hasDataset: true })).not.toThrow();
});

test('stage seeds differ by stage and are fixed by the run seed', () => {
  expect(stageSeed(0, 0)).not.toBe(stageSeed(0, 1));
  expect(stageSeed(1, 0)).not.toBe(stageSeed(0, 0));
  expect(stageSeed(5, 2)).toBe(stageSeed(5, 2));
});
