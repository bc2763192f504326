// The ONE mapping from BerthError kinds to HTTP statuses for the Engine API
// (moby daemon/server/httpstatus: errdefs class → status). Foreign errors are 500.
import { type ErrorKind, kindOf } from '../errors/index.js';

const STATUS: Record<ErrorKind, number> = {
  'not-found': 404,
  'invalid-argument': 400,
  conflict: 409,
  'already-exists': 409,
  unauthorized: 401,
  forbidden: 403,
  unavailable: 503,
  'not-modified': 304,
  'not-implemented': 501,
  'failed-precondition': 409,
  cancelled: 499,
  internal: 500,
};

export function statusOf(err: unknown): number {
  return STATUS[kindOf(err)];
}

/** The text of `{"message": …}`: the error's own message (dockerd prints err.Error()). */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
