import { InvalidInputError } from '../errors';

/** Base of every error a dataset source or file can cause; the caller can fix each one. */
export class DatasetError extends InvalidInputError {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

/** A dataset file exists but its content is not what its format requires. */
export class DatasetFormatError extends DatasetError {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'DatasetFormatError';
  }
}

/** A dataset source names something that is not there (a path, a built-in name, a required file). */
export class DatasetSourceError extends DatasetError {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetSourceError';
  }
}
