import { GraphQLJSONObject } from 'graphql-scalars';
import { Field, ID, InputType } from 'type-graphql';

@InputType({ description: "One stage: a plugin and its config (data checked against the plugin's configSchema)" })
export class StageInput {
  @Field()
  plugin!: string;

  @Field(() => GraphQLJSONObject, { nullable: true, description: "Overrides of the plugin's defaults" })
  config?: Record<string, unknown>;
}

@InputType()
export class CreatePipelineInput {
  @Field(() => ID)
  projectId!: string;

  @Field()
  name!: string;

  @Field(() => ID, { description: 'The model every stage starts from (the teacher)' })
  teacherModelId!: string;

  @Field(() => ID, {
    nullable: true,
    description: 'Real data: its training split feeds stages needing data when no synthesis stage ran; its test split evaluates every model',
  })
  datasetId?: string;

  @Field(() => [StageInput])
  stages!: StageInput[];
}
