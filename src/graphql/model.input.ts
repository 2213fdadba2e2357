import { Field, Float, InputType, Int, ObjectType } from 'type-graphql';

@InputType({ description: 'A zoo architecture and its parameters' })
export class ModelSpecInput {
  @Field({ description: 'lenet5-bn, resnet-cifar, resnet-basic or vgg-bn' })
  architecture!: string;

  @Field(() => [Int], { nullable: true, description: '[height, width, channels]; trainModel takes the dataset’s when left out' })
  inputShape?: number[] | null;

  @Field(() => Int, { nullable: true, description: 'trainModel takes the dataset’s when left out' })
  numClasses?: number | null;

  @Field(() => Float, { nullable: true, description: 'Channel-width multiplier (default 1; 0.5 = half-width student)' })
  width?: number | null;

  @Field(() => Int, { nullable: true, description: 'resnet-cifar: 6n+2 layers; resnet-basic: 18 or 34; VGG: conv blocks' })
  depth?: number | null;
}

@InputType()
export class TrainingOptionsInput {
  @Field(() => Int, { nullable: true, description: 'default 1' })
  epochs?: number | null;

  @Field(() => Int, { nullable: true, description: 'default 64' })
  batchSize?: number | null;

  @Field(() => String, { nullable: true, description: 'sgd or adam (default)' })
  optimizer?: string | null;

  @Field(() => Float, { nullable: true, description: 'peak learning rate, default 0.001' })
  learningRate?: number | null;

  @Field(() => Float, { nullable: true })
  momentum?: number | null;

  @Field(() => Float, { nullable: true })
  weightDecay?: number | null;

  @Field(() => String, { nullable: true, description: 'cosine (default) or constant' })
  schedule?: string | null;

  @Field(() => Int, { nullable: true })
  warmupSteps?: number | null;

  @Field(() => Boolean, { nullable: true })
  augmentFlip?: boolean | null;

  @Field(() => Int, { nullable: true })
  augmentCropPadding?: number | null;

  @Field(() => Int, { nullable: true, description: 'seeds initial weights, shuffling and augmentation; default 0' })
  seed?: number | null;

  @Field(() => Int, { nullable: true, description: 'train on a seeded random subset of this many training images' })
  trainImages?: number | null;
}

@ObjectType({ description: 'Where exportModel wrote a model' })
export class ExportedModel {
  @Field({ description: 'Absolute path of the LayersModel directory (model.json + weights.bin)' })
  path!: string;

  @Field(() => Int)
  bytes!: number;

  @Field()
  contentHash!: string;
}
