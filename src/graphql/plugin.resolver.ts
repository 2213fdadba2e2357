import { Arg, Ctx, ID, Mutation, Query, Resolver } from 'type-graphql';
import { injectable } from 'tsyringe';
import type { CondensePlugin } from '../core/plugins/contracts';
import { PluginRegistry } from '../core/plugins/registry';
import { PluginEnablementService, type PluginState } from '../core/projects/plugin-enablement.service';
import type { CondenseContext } from './context';
import { PluginInfo, ProjectPluginState } from './plugin.type';

@injectable()
@Resolver(() => PluginInfo)
export class PluginResolver {
  constructor(
    private readonly registry: PluginRegistry,
    private readonly enablement: PluginEnablementService,
  ) {}

  @Query(() => [PluginInfo], { description: 'Every registered plugin' })
  plugins(): PluginInfo[] {
    return this.registry.list().map((p) => describePlugin(this.registry, p));
  }

  @Mutation(() => ProjectPluginState, { description: 'Enables or disables a plugin for a project' })
  async setPluginEnabled(
    @Arg('projectId', () => ID) projectId: string,
    @Arg('plugin') plugin: string,
    @Arg('enabled') enabled: boolean,
    @Ctx() ctx: CondenseContext,
  ): Promise<ProjectPluginState> {
    return pluginStateView(this.registry, await this.enablement.setEnabled(ctx.auth, projectId, plugin, enabled));
  }
}

export function describePlugin(registry: PluginRegistry, plugin: CondensePlugin): PluginInfo {
  return {
    name: plugin.name,
    kind: plugin.kind,
    version: plugin.version,
    description: plugin.description,
    inputs: [...plugin.inputs],
    output: plugin.output,
    configSchema: registry.jsonSchema(plugin.name),
    defaults: registry.defaults(plugin.name),
  };
}

export function pluginStateView(registry: PluginRegistry, state: PluginState): ProjectPluginState {
  return { name: state.plugin.name, enabled: state.enabled, plugin: describePlugin(registry, state.plugin) };
}
