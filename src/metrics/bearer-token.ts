/**
 * Bearer-token checks shared by every guarded endpoint (WebSocket upgrades, GET /metrics), so one comparison
 * decides for all of them.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** The token of an `Authorization: Bearer <token>` header; undefined for any other scheme or none. */
export function bearerTokenOf(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const token = /^Bearer\s+(.+)$/i.exec(authorization)?.[1]?.trim();
  return token === undefined || token === '' ? undefined : token;
}

/**
 * Whether `given` equals `expected`, in time independent of where they differ: both are hashed first, so the
 * lengths timingSafeEqual compares are always equal and the token's length does not leak either.
 */
export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** Whether an Authorization header carries `Bearer <expected>`. */
export function bearerTokenMatches(authorization: string | undefined, expected: string): boolean {
  return tokenMatches(bearerTokenOf(authorization), expected);
}
