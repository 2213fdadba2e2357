import crypto from 'node:crypto';

/** Every Condense API token starts with this, so leaked tokens are recognisable. */
export const TOKEN_PREFIX = 'cdk_';
/** How much of a token is kept in clear to tell tokens apart (prefix plus a few characters). */
const DISPLAY_PREFIX_LENGTH = TOKEN_PREFIX.length + 6;

export interface NewToken {
  /** The secret; shown once, never stored. */
  token: string;
  hash: string;
  prefix: string;
}

/** `cdk_` followed by 32 random bytes in base64url. */
export function generateToken(): NewToken {
  const token = TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token), prefix: token.slice(0, DISPLAY_PREFIX_LENGTH) };
}

/** Hex SHA-256; tokens carry 256 random bits, so a fast unsalted hash is enough. */
export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Extracts the token from an `Authorization: Bearer <token>` header; undefined when absent or malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}
