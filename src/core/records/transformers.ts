import type { ValueTransformer } from 'typeorm';

/** pg returns bigint as a string; values Condense keeps in bigint columns fit a double exactly (< 2^53). */
export const bigintAsNumber: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | null) => (value == null ? value : Number(value)),
};
