import { registerEnumType } from 'type-graphql';

/** String-valued enums shared by the records and the GraphQL schema (stored as text with CHECK constraints). */
export const MemberRole = { admin: 'admin', member: 'member' } as const;
export type MemberRole = (typeof MemberRole)[keyof typeof MemberRole];
registerEnumType(MemberRole, { name: 'MemberRole', description: 'admin: manages members and tokens of its team' });

export const RunStatus = {
  queued: 'queued',
  running: 'running',
  succeeded: 'succeeded',
  failed: 'failed',
  cancelled: 'cancelled',
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];
registerEnumType(RunStatus, { name: 'RunStatus' });

/** Status of one stage of a run; `skipped` when the run ended before the stage started. */
export const StageStatus = { ...RunStatus, skipped: 'skipped' } as const;
export type StageStatus = (typeof StageStatus)[keyof typeof StageStatus];
registerEnumType(StageStatus, { name: 'StageStatus' });

export const ModelOrigin = { zoo: 'zoo', imported: 'imported', trained: 'trained', pipeline: 'pipeline' } as const;
export type ModelOrigin = (typeof ModelOrigin)[keyof typeof ModelOrigin];
registerEnumType(ModelOrigin, { name: 'ModelOrigin', description: 'How the model came to exist' });
