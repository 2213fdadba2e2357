import type { InjectionToken } from 'tsyringe';
import type { CondenseConfig } from '../config/config';
import type { Logger } from '../logging/logger';

/** Container tokens for values that have no class of their own (classes are their own tokens). */
export const CONFIG: InjectionToken<CondenseConfig> = Symbol('CondenseConfig');
export const LOGGER: InjectionToken<Logger> = Symbol('Logger');
