import { ARCHITECTURES, ModelSpecError, modelInputShape, modelNumClasses, validateModelSpec, type Architecture, type ModelHandle, type ModelSpec } from '../models/model-spec';
import { z } from 'zod';
import { PluginInputError } from './contracts';

/** The `student` part of a distillation config: overrides of the teacher's spec, with a default width. */
export function studentOverridesSchema(defaultWidth: number) {
  return z
    .strictObject({
      architecture: z.enum(ARCHITECTURES).optional().describe("Student architecture; defaults to the teacher's (required when the teacher was imported without a spec)"),
      width: z.number().gt(0).max(16).default(defaultWidth).describe('Channel-width multiplier of the student'),
      depth: z.number().int().min(1).max(1000).optional().describe("Student depth (resnet-cifar 6n+2, resnet-basic 18 or 34, VGG blocks); defaults to the teacher's for the same architecture"),
    })
    .default({ width: defaultWidth });
}

/** Overrides a distillation config gives for its student. */
export interface StudentOverrides {
  architecture?: Architecture;
  width: number;
  depth?: number;
}

/**
 * A student's spec: the teacher's spec (or, for an imported teacher, its input shape and class count)
 * with the configured architecture, width and depth. The teacher's depth is inherited only for the
 * same architecture (a depth means different things in different architectures).
 * Throws PluginInputError when the result is not a valid zoo spec.
 */
export function studentSpecFrom(teacher: ModelHandle, student: StudentOverrides, plugin: string): ModelSpec {
  const architecture = student.architecture ?? teacher.spec?.architecture;
  if (!architecture) {
    throw new PluginInputError(
      `teacher ${teacher.name} was imported without a zoo spec, so ${plugin} cannot copy its architecture; set student.architecture to one of ${ARCHITECTURES.join(', ')}`,
    );
  }
  const depth = student.depth ?? (architecture === teacher.spec?.architecture ? teacher.spec.depth : undefined);
  const spec: ModelSpec = {
    architecture,
    inputShape: teacher.spec?.inputShape ?? modelInputShape(teacher),
    numClasses: teacher.spec?.numClasses ?? modelNumClasses(teacher),
    width: student.width,
  };
  if (depth !== undefined) spec.depth = depth;
  try {
    return validateModelSpec(spec);
  } catch (err) {
    if (err instanceof ModelSpecError) throw new PluginInputError(`student spec is invalid: ${err.message}`);
    throw err;
  }
}
