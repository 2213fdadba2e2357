import { DataSource } from 'typeorm';
import { injectable } from 'tsyringe';
import type { Caller } from '../auth/auth.service';
import { InvalidInputError } from '../errors';
import type { CondensePlugin } from '../plugins/contracts';
import { PluginRegistry } from '../plugins/registry';
import { ProjectPlugin } from '../records/project-plugin.entity';
import { ProjectService } from './project.service';

export interface PluginState {
  plugin: CondensePlugin;
  enabled: boolean;
}

/** Which registered plugins a project may use. A plugin is disabled until a project enables it. */
@injectable()
export class PluginEnablementService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: PluginRegistry,
    private readonly projects: ProjectService,
  ) {}

  /** Every registered plugin with whether the project enabled it. */
  async states(projectId: string): Promise<PluginState[]> {
    const enabled = await this.enabledNames(projectId);
    return this.registry.list().map((plugin) => ({ plugin, enabled: enabled.has(plugin.name) }));
  }

  /** Names of the registered plugins the project enabled. */
  async enabledNames(projectId: string): Promise<Set<string>> {
    const rows = await this.dataSource.getRepository(ProjectPlugin).findBy({ projectId, enabled: true });
    return new Set(rows.map((r) => r.plugin).filter((name) => this.registry.has(name)));
  }

  async setEnabled(caller: Caller, projectId: string, pluginName: string, enabled: boolean): Promise<PluginState> {
    const project = await this.projects.require(caller, projectId);
    const plugin = this.registry.get(pluginName); // UnknownPluginError (naming the known ones) when not registered
    await this.dataSource
      .createQueryBuilder()
      .insert()
      .into(ProjectPlugin)
      .values({ projectId: project.id, plugin: pluginName, enabled })
      .orUpdate(['enabled', 'updated_at'], ['project_id', 'plugin'])
      .execute();
    return { plugin, enabled };
  }

  /** Throws when the project may not use the plugin (unknown or disabled); for pipeline validation. */
  async requireEnabled(projectId: string, pluginName: string): Promise<CondensePlugin> {
    const plugin = this.registry.get(pluginName); // UnknownPluginError when not registered
    const enabled = await this.enabledNames(projectId);
    if (!enabled.has(pluginName)) {
      throw new InvalidInputError(`plugin "${pluginName}" is disabled in this project; enable it with setPluginEnabled(projectId, plugin: "${pluginName}", enabled: true)`);
    }
    return plugin;
  }
}
