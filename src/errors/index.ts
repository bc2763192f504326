// One error vocabulary for all of berth. Domain code throws BerthError with a
// kind; only the API layers (Engine API, registry) map kinds to HTTP statuses.
export type ErrorKind =
  | 'not-found'
  | 'invalid-argument'
  | 'conflict'
  | 'already-exists'
  | 'unauthorized'
  | 'forbidden'
  | 'unavailable'
  | 'not-modified'
  | 'not-implemented'
  | 'failed-precondition'
  | 'cancelled'
  | 'internal';

export class BerthError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = 'BerthError';
  }
}

export const notFound = (msg: string, cause?: unknown) => new BerthError('not-found', msg, { cause });
export const invalidArgument = (msg: string, cause?: unknown) => new BerthError('invalid-argument', msg, { cause });
export const conflict = (msg: string, cause?: unknown) => new BerthError('conflict', msg, { cause });
export const alreadyExists = (msg: string, cause?: unknown) => new BerthError('already-exists', msg, { cause });
export const internal = (msg: string, cause?: unknown) => new BerthError('internal', msg, { cause });
export const notImplemented = (msg: string, cause?: unknown) => new BerthError('not-implemented', msg, { cause });
export const failedPrecondition = (msg: string, cause?: unknown) =>
  new BerthError('failed-precondition', msg, { cause });

/** The kind of an error, looking through `cause` chains; 'internal' for foreign errors. */
export function kindOf(err: unknown): ErrorKind {
  let e: unknown = err;
  for (let depth = 0; e && depth < 16; depth++) {
    if (e instanceof BerthError) return e.kind;
    e = (e as { cause?: unknown }).cause;
  }
  return 'internal';
}

export function isKind(err: unknown, kind: ErrorKind): boolean {
  return kindOf(err) === kind;
}

/** Node's errno code (ENOENT, EEXIST, …) of an error, if it has one. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}
