import type { NonEmptyArray } from 'type-graphql';
import { PluginResolver } from './plugin.resolver';
import { ProjectResolver } from './project.resolver';
import { MemberResolver, TeamResolver } from './team.resolver';

/** Every resolver class of the schema; each is resolved from the app's container. */
export const RESOLVERS: NonEmptyArray<Function> = [MemberResolver, TeamResolver, ProjectResolver, PluginResolver];
