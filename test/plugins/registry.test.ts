import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { container } from 'tsyringe';
import {
  deepMerge,
  loadPluginRegistry,
  PluginConfigError,
  PluginRegistry,
  PluginRegistryError,
  UnknownPluginError,
} from '../../src/core/plugins/registry';

const repoManifest = path.resolve(__dirname, '../../plugins.json');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-registry-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function manifest(entries: unknown): string {
  const file = path.join(tmp, `plugins-${Math.random().toString(36).slice(2)}.json`.replace(/0\./, ''));
  fs.writeFileSync(file, JSON.stringify(entries));
  return file;
}
const noiseEntry = { name: 'noise', kind: 'synthesis', module: 'noise', version: '1.0.0', defaults: {} };

describe('PluginRegistry.load', () => {
  const registry = new PluginRegistry().load();

  it('loads every plugin declared in the repository plugins.json, found by walking up', () => {
    const declared = JSON.parse(fs.readFileSync(repoManifest, 'utf8')) as Array<{ name: string; kind: string; version: string }>;
    expect(registry.source).toBe(repoManifest);
    expect(registry.list().map((p) => p.name).sort()).toEqual(declared.map((d) => d.name).sort());
    for (const d of declared) {
      const plugin = registry.get(d.name);
      expect([plugin.kind, plugin.version]).toEqual([d.kind, d.version]);
      expect(plugin.description.length).toBeGreaterThan(20);
    }
    expect(registry.has('kd')).toBe(true);
    expect(registry.has('no-such-plugin')).toBe(false);
    expect(registry.getOfKind('magnitude', 'pruning').name).toBe('magnitude');
    expect(() => registry.getOfKind('magnitude', 'synthesis')).toThrow(/pruning plugin, not a synthesis/);
  });

  it('closes registration after loading', () => {
    expect(() => registry.load(repoManifest)).toThrow(/already loaded.*closed/);
  });

  it('refuses use before load', () => {
    expect(() => new PluginRegistry().list()).toThrow(/not loaded/);
  });

  it('rejects a module that is a path rather than a folder name', () => {
    const file = manifest([{ ...noiseEntry, module: '../../../tmp/evil' }]);
    expect(() => new PluginRegistry().load(file)).toThrow(/module is a folder name under src\/plugins/);
  });

  it('rejects a module folder that does not exist', () => {
    const file = manifest([{ ...noiseEntry, module: 'no-such-plugin' }]);
    expect(() => new PluginRegistry().load(file)).toThrow(/"no-such-plugin", which is not a folder/);
  });

  it('rejects a declared name, kind or version that differs from the module', () => {
    expect(() => new PluginRegistry().load(manifest([{ ...noiseEntry, version: '2.0.0' }]))).toThrow(/version "1.0.0" where plugins.json declares "2.0.0"/);
    expect(() => new PluginRegistry().load(manifest([{ ...noiseEntry, kind: 'pruning' }]))).toThrow(/kind "synthesis" where plugins.json declares "pruning"/);
    expect(() => new PluginRegistry().load(manifest([{ ...noiseEntry, name: 'gauss' }]))).toThrow(/name "noise" where plugins.json declares "gauss"/);
  });

  it('rejects defaults that do not validate, duplicates, and malformed manifests', () => {
    expect(() => new PluginRegistry().load(manifest([{ ...noiseEntry, defaults: { std: -1 } }]))).toThrow(/defaults of plugin "noise" do not validate: std:/);
    expect(() => new PluginRegistry().load(manifest([noiseEntry, noiseEntry]))).toThrow(/declared twice/);
    expect(() => new PluginRegistry().load(manifest([{ ...noiseEntry, kind: 'magic' }]))).toThrow(PluginRegistryError);
    expect(() => new PluginRegistry().load(manifest({ not: 'a list' }))).toThrow(/invalid plugin manifest/);
    expect(() => new PluginRegistry().load(path.join(tmp, 'missing.json'))).toThrow(/cannot read plugin manifest/);
  });

  it('loadPluginRegistry loads the container singleton once', () => {
    const a = loadPluginRegistry(repoManifest);
    expect(loadPluginRegistry()).toBe(a);
    expect(container.resolve(PluginRegistry)).toBe(a);
    expect(() => loadPluginRegistry(manifest([noiseEntry]))).toThrow(/already loaded/);
  });
});

describe('PluginRegistry configs', () => {
  const registry = new PluginRegistry().load(repoManifest);

  it('names the known plugins when one is unknown', () => {
    let error: unknown;
    try {
      registry.get('no-such-plugin');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(UnknownPluginError);
    const known = registry.list().map((p) => p.name).sort().join(', ');
    expect(known).toMatch(/deep-inversion.*kd.*magnitude.*noise/);
    expect((error as Error).message).toBe(`unknown plugin "no-such-plugin"; known plugins: ${known}`);
    expect(() => registry.validateConfig('nope', {})).toThrow(UnknownPluginError);
  });

  it('merges the declared defaults under a partial config, nested objects key by key', () => {
    const kd = registry.validateConfig('kd', { temperature: 2, student: { architecture: 'lenet5-bn' } });
    expect(kd.temperature).toBe(2);
    expect(kd.alpha).toBe(registry.defaults('kd').alpha);
    expect(kd.student).toEqual({ width: 0.5, architecture: 'lenet5-bn' });
    expect(registry.validateConfig('noise', undefined)).toEqual(registry.defaults('noise'));
    // defaults() hands out copies
    (registry.defaults('kd').student as Record<string, unknown>).width = 9;
    expect((registry.defaults('kd').student as Record<string, unknown>).width).toBe(0.5);
  });

  function issuesOf(name: string, config: unknown): PluginConfigError {
    try {
      registry.validateConfig(name, config);
    } catch (err) {
      expect(err).toBeInstanceOf(PluginConfigError);
      return err as PluginConfigError;
    }
    throw new Error('config was accepted');
  }

  it('rejects a wrong type with the field path', () => {
    const err = issuesOf('noise', { count: 'many' });
    expect(err.issues).toEqual([{ path: 'count', message: expect.stringMatching(/expected number/) }]);
    expect(err.message).toMatch(/^invalid config for plugin "noise": count: .*expected number/);
  });

  it('rejects unknown keys, also nested ones, instead of dropping them', () => {
    const err = issuesOf('kd', { temprature: 3, student: { widht: 0.25 } });
    expect(err.issues.map((i) => i.path).sort()).toEqual(['', 'student']);
    expect(err.message).toMatch(/\(config\): Unrecognized key: "temprature"/);
    expect(err.message).toMatch(/student: Unrecognized key: "widht"/);
  });

  it('rejects values out of range, listing every issue', () => {
    const err = issuesOf('magnitude', { sparsity: 1.5, schedule: 'cubic' });
    expect(err.issues.map((i) => i.path).sort()).toEqual(['schedule', 'sparsity']);
    expect(issuesOf('kd', { alpha: -0.1 }).issues[0].path).toBe('alpha');
    expect(issuesOf('kd', { temperature: 0 }).issues[0].path).toBe('temperature');
  });

  it('rejects a config that is not an object', () => {
    expect(issuesOf('noise', [1, 2]).message).toMatch(/config must be an object; got an array/);
    expect(issuesOf('noise', 'count=3').message).toMatch(/got string/);
  });

  it('publishes each config schema as JSON Schema with defaults and no extra keys', () => {
    for (const plugin of registry.list()) {
      const schema = registry.jsonSchema(plugin.name);
      expect(schema.type).toBe('object');
      expect(schema.additionalProperties).toBe(false);
      const props = schema.properties as Record<string, { default?: unknown }>;
      for (const key of Object.keys(registry.defaults(plugin.name))) expect(props[key]).toBeDefined();
    }
    const noise = registry.jsonSchema('noise').properties as Record<string, Record<string, unknown>>;
    expect(noise.count).toMatchObject({ type: 'integer', minimum: 1, default: 2560 });
  });
});

describe('deepMerge', () => {
  it('merges objects recursively and replaces arrays and scalars', () => {
    expect(deepMerge({ a: 1, b: { c: 2, d: [1, 2] } }, { b: { d: [3] }, e: null })).toEqual({ a: 1, b: { c: 2, d: [3] }, e: null });
  });
});
