import { Field, ObjectType } from 'type-graphql';
import { GraphQLJSONObject } from 'graphql-scalars';

@ObjectType('Plugin', { description: 'A registered compression method; its config is validated against configSchema' })
export class PluginInfo {
  @Field()
  name!: string;

  @Field({ description: 'synthesis, distillation or pruning' })
  kind!: string;

  @Field()
  version!: string;

  @Field()
  description!: string;

  @Field(() => [String], { description: 'Artifact kinds the plugin consumes' })
  inputs!: string[];

  @Field({ description: 'Artifact kind the plugin produces' })
  output!: string;

  @Field(() => GraphQLJSONObject, { description: 'JSON Schema of the config (fields with defaults are optional)' })
  configSchema!: Record<string, unknown>;

  @Field(() => GraphQLJSONObject)
  defaults!: Record<string, unknown>;
}

@ObjectType({ description: 'A plugin and whether a project may use it' })
export class ProjectPluginState {
  @Field()
  name!: string;

  @Field()
  enabled!: boolean;

  @Field(() => PluginInfo)
  plugin!: PluginInfo;
}
