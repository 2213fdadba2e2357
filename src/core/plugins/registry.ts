import fs from 'node:fs';
import path from 'node:path';
import { container, singleton } from 'tsyringe';
import { z } from 'zod';
import { PLUGIN_KINDS, type CondensePlugin, type PluginKind } from './contracts';

/** Folder holding one sub-folder per plugin: src/plugins under ts-jest, dist/src/plugins when compiled. */
const PLUGINS_DIR = path.join(__dirname, '../../plugins');

const NAME_PATTERN = /^[a-z0-9-]+$/;

/** One entry of plugins.json. `module` names a folder under src/plugins, never a path. */
const manifestEntrySchema = z.strictObject({
  name: z.string().regex(NAME_PATTERN, 'plugin names are lower-case letters, digits and dashes'),
  kind: z.enum(PLUGIN_KINDS),
  module: z.string().regex(NAME_PATTERN, 'module is a folder name under src/plugins (lower-case letters, digits and dashes)'),
  version: z.string().regex(/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/, 'version must be semantic (major.minor.patch)'),
  defaults: z.record(z.string(), z.unknown()).default({}),
});
const manifestSchema = z.array(manifestEntrySchema);
export type PluginManifestEntry = z.infer<typeof manifestEntrySchema>;

/** A problem with plugins.json or a plugin module found at start-up; the server must not start with it. */
export class PluginRegistryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginRegistryError';
  }
}

/** A stage names a plugin that is not registered. */
export class UnknownPluginError extends Error {
  constructor(
    readonly plugin: string,
    readonly known: string[],
  ) {
    super(`unknown plugin "${plugin}"; known plugins: ${known.length > 0 ? known.join(', ') : '(none)'}`);
    this.name = 'UnknownPluginError';
  }
}

/** One problem in a plugin config: where (dotted path, empty for the whole config) and what. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** A plugin config that does not match the plugin's schema; the message lists every issue as `path: message`. */
export class PluginConfigError extends Error {
  constructor(
    readonly plugin: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`invalid config for plugin "${plugin}": ${issues.map((i) => `${i.path || '(config)'}: ${i.message}`).join('; ')}`);
    this.name = 'PluginConfigError';
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Objects merge key by key; anything else in `override` (arrays, scalars, null) replaces the default. */
export function deepMerge(defaults: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(override)) {
    const base = out[key];
    out[key] = isPlainObject(base) && isPlainObject(value) ? deepMerge(base, value) : value;
  }
  return out;
}

function toIssues(error: z.ZodError): ConfigIssue[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}

/** Finds plugins.json by walking up from this file (works from src/ and from dist/src/). */
function defaultManifestPath(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'plugins.json');
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new PluginRegistryError(`plugins.json not found in ${__dirname} or any folder above it`);
    dir = parent;
  }
}

interface Registration {
  plugin: CondensePlugin;
  entry: PluginManifestEntry;
}

/**
 * The plugins this process may run. Loaded once at start-up from plugins.json; after that nothing
 * can be registered, and nothing is ever loaded from a path that arrives at run time.
 */
@singleton()
export class PluginRegistry {
  private registrations: Map<string, Registration> | undefined;
  private manifestPath: string | undefined;

  get loaded(): boolean {
    return this.registrations !== undefined;
  }

  /** Where the registry was loaded from, once loaded. */
  get source(): string | undefined {
    return this.manifestPath;
  }

  /**
   * Reads plugins.json, requires each declared module from src/plugins/<module>, checks that its
   * exported `plugin` matches the declared name, kind and version and that the declared defaults
   * validate against its schema. Throws PluginRegistryError on the first problem.
   */
  load(pluginsJsonPath?: string): this {
    if (this.registrations) {
      throw new PluginRegistryError(`plugin registry is already loaded from ${this.manifestPath}; registration is closed after start-up`);
    }
    const file = path.resolve(pluginsJsonPath ?? defaultManifestPath());
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new PluginRegistryError(`cannot read plugin manifest ${file}: ${(err as Error).message}`);
    }
    const parsed = manifestSchema.safeParse(raw);
    if (!parsed.success) {
      const problems = toIssues(parsed.error).map((i) => `${i.path || '(manifest)'}: ${i.message}`);
      throw new PluginRegistryError(`invalid plugin manifest ${file}: ${problems.join('; ')}`);
    }
    const registrations = new Map<string, Registration>();
    for (const entry of parsed.data) {
      if (registrations.has(entry.name)) throw new PluginRegistryError(`${file}: plugin "${entry.name}" is declared twice`);
      registrations.set(entry.name, { plugin: loadPluginModule(entry, file), entry });
    }
    this.registrations = registrations;
    this.manifestPath = file;
    return this;
  }

  list(): CondensePlugin[] {
    return [...this.all().values()].map((r) => r.plugin);
  }

  has(name: string): boolean {
    return this.all().has(name);
  }

  get(name: string): CondensePlugin {
    return this.registration(name).plugin;
  }

  /** Kind-checked lookup, for callers that need one kind of plugin. */
  getOfKind<K extends PluginKind>(name: string, kind: K): Extract<CondensePlugin, { kind: K }> {
    const plugin = this.get(name);
    if (plugin.kind !== kind) throw new PluginRegistryError(`plugin "${name}" is a ${plugin.kind} plugin, not a ${kind} plugin`);
    return plugin as Extract<CondensePlugin, { kind: K }>;
  }

  /** The defaults declared in plugins.json (a fresh copy). */
  defaults(name: string): Record<string, unknown> {
    return structuredClone(this.registration(name).entry.defaults);
  }

  /** The full config a stage runs with: defaults deep-merged with `config`, then parsed by the plugin's schema. */
  validateConfig(name: string, config: unknown): Record<string, unknown> {
    const { plugin, entry } = this.registration(name);
    if (config !== undefined && config !== null && !isPlainObject(config)) {
      throw new PluginConfigError(name, [{ path: '', message: `config must be an object; got ${Array.isArray(config) ? 'an array' : typeof config}` }]);
    }
    const merged = deepMerge(entry.defaults, (config ?? {}) as Record<string, unknown>);
    const result = plugin.configSchema.safeParse(merged);
    if (!result.success) throw new PluginConfigError(name, toIssues(result.error));
    return result.data as Record<string, unknown>;
  }

  /** The config schema as JSON Schema (input form: fields with defaults are optional), for clients building forms. */
  jsonSchema(name: string): Record<string, unknown> {
    return z.toJSONSchema(this.registration(name).plugin.configSchema, { io: 'input' }) as Record<string, unknown>;
  }

  private all(): Map<string, Registration> {
    if (!this.registrations) throw new PluginRegistryError('plugin registry is not loaded; call load() at start-up');
    return this.registrations;
  }

  private registration(name: string): Registration {
    const r = this.all().get(name);
    if (!r) throw new UnknownPluginError(name, [...this.all().keys()].sort());
    return r;
  }
}

function loadPluginModule(entry: PluginManifestEntry, manifest: string): CondensePlugin {
  const dir = path.join(PLUGINS_DIR, entry.module);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new PluginRegistryError(`${manifest}: plugin "${entry.name}" names module "${entry.module}", which is not a folder in ${PLUGINS_DIR}`);
  }
  let exported: { plugin?: unknown };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    exported = require(dir);
  } catch (err) {
    throw new PluginRegistryError(`plugin "${entry.name}": loading module "${entry.module}" failed: ${(err as Error).message}`);
  }
  const plugin = exported.plugin as CondensePlugin | undefined;
  if (!plugin || typeof plugin !== 'object' || !plugin.configSchema || typeof plugin.configSchema.safeParse !== 'function') {
    throw new PluginRegistryError(`plugin module "${entry.module}" must export \`plugin\` with a zod configSchema`);
  }
  const mismatch = (['name', 'kind', 'version'] as const).filter((key) => plugin[key] !== entry[key]);
  if (mismatch.length > 0) {
    const detail = mismatch.map((key) => `${key} "${plugin[key]}" where plugins.json declares "${entry[key]}"`).join(', ');
    throw new PluginRegistryError(`plugin module "${entry.module}" exports ${detail}`);
  }
  const method = { synthesis: 'synthesize', distillation: 'distill', pruning: 'prune' }[plugin.kind];
  if (typeof (plugin as unknown as Record<string, unknown>)[method] !== 'function') {
    throw new PluginRegistryError(`plugin "${entry.name}" is a ${plugin.kind} plugin but has no ${method}() method`);
  }
  const schema = z.toJSONSchema(plugin.configSchema, { io: 'input' }) as Record<string, unknown>;
  if (schema.type !== 'object' || schema.additionalProperties !== false) {
    throw new PluginRegistryError(`plugin "${entry.name}": configSchema must be a z.strictObject so unknown config keys are rejected`);
  }
  const defaults = plugin.configSchema.safeParse(entry.defaults);
  if (!defaults.success) {
    const issues = toIssues(defaults.error).map((i) => `${i.path || '(config)'}: ${i.message}`);
    throw new PluginRegistryError(`${manifest}: defaults of plugin "${entry.name}" do not validate: ${issues.join('; ')}`);
  }
  return plugin;
}

/** Resolves the process-wide registry from the container and loads it (once; later calls return it). */
export function loadPluginRegistry(pluginsJsonPath?: string): PluginRegistry {
  const registry = container.resolve(PluginRegistry);
  if (!registry.loaded) return registry.load(pluginsJsonPath);
  if (pluginsJsonPath !== undefined && path.resolve(pluginsJsonPath) !== registry.source) {
    throw new PluginRegistryError(`plugin registry is already loaded from ${registry.source}; cannot load ${pluginsJsonPath} as well`);
  }
  return registry;
}
