import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { datasetSourceSchema } from '../core/data/catalog';
import { stageListSchema } from '../core/pipelines/pipeline-spec';
import { trainingOptionsSchema } from '../core/projects/model.service';
import { ARCHITECTURES } from '../core/models/model-spec';

const teacherSchema = z.union([
  z.strictObject({ modelDir: z.string().min(1), name: z.string().min(1).optional() }),
  z.strictObject({
    name: z.string().min(1).optional(),
    architecture: z.enum(ARCHITECTURES),
    width: z.number().positive().default(1),
    depth: z.number().int().positive().optional(),
    training: trainingOptionsSchema.default({} as never),
  }),
]);

/** A pipeline file for `condense run`: which data, which teacher, which stages. */
export const pipelineFileSchema = z.strictObject({
  name: z.string().min(1).default('pipeline'),
  project: z.string().min(1).default('cli'),
  seed: z.number().int().min(0).default(0),
  dataset: datasetSourceSchema,
  teacher: teacherSchema,
  stages: stageListSchema,
});
export type PipelineFile = z.infer<typeof pipelineFileSchema>;

export class PipelineFileError extends Error {}

export function readPipelineFile(file: string): PipelineFile {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new PipelineFileError(`cannot read ${file}: ${(error as Error).message}`);
  }
  const parsed = pipelineFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new PipelineFileError(`${file} is not a valid pipeline file: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  const spec = parsed.data;
  // Paths in the file are relative to the file.
  const base = path.dirname(path.resolve(file));
  if ('modelDir' in spec.teacher) spec.teacher.modelDir = path.resolve(base, spec.teacher.modelDir);
  return spec;
}
