import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level = 'info', name = 'condense'): Logger {
  return pino({ name, level });
}

/** A logger that drops everything; for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
