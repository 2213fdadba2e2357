import { Field, InputType, Int } from 'type-graphql';

@InputType({
  description:
    'Where a dataset comes from. kind "builtin" takes name (mnist, fashion-mnist, colored-mnist); "idx" the four IDX files; ' +
    '"cifar10" / "cifar100" the folder of the binary files (dir); "image-folder" a folder with one sub-folder per class (dir, optional channels).',
})
export class DatasetSourceInput {
  @Field({ description: 'builtin, idx, cifar10, cifar100 or image-folder' })
  kind!: string;

  @Field(() => String, { nullable: true })
  name?: string | null;

  @Field(() => String, { nullable: true })
  trainImages?: string | null;

  @Field(() => String, { nullable: true })
  trainLabels?: string | null;

  @Field(() => String, { nullable: true })
  testImages?: string | null;

  @Field(() => String, { nullable: true })
  testLabels?: string | null;

  @Field(() => String, { nullable: true, description: 'A folder on the server' })
  dir?: string | null;

  @Field(() => Int, { nullable: true, description: 'image-folder: 1 (grey) or 3 (RGB); default: from the images' })
  channels?: number | null;
}
