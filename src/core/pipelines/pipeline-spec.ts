import { z } from 'zod';

/** One stage of a pipeline: a plugin and its config (data, validated against the plugin's schema). */
export const stageSpecSchema = z.strictObject({
  plugin: z.string().min(1, 'plugin name is required'),
  config: z.record(z.string(), z.unknown()).default({}),
});
export type StageSpec = z.infer<typeof stageSpecSchema>;

export const stageListSchema = z.array(stageSpecSchema).min(1, 'a pipeline needs at least one stage').max(32);
