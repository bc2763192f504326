// The registry's error vocabulary: ONE table of the distribution-spec error
// codes (plus the few distribution registers that clients still see) with
// their HTTP statuses, and the JSON envelope `{"errors":[{code,message,detail}]}`.

export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'The operation is unsupported.' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  // Registered by distribution and accepted by the conformance suite.
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error the HTTP layer renders as the spec's envelope. */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers (e.g. Range on a 416). */
  readonly headers: Record<string, string>;
  constructor(
    code: ErrorCode,
    opts: {
      message?: string;
      detail?: unknown;
      status?: number;
      headers?: Record<string, string>;
      cause?: unknown;
    } = {},
  ) {
    super(opts.message ?? ERROR_CODES[code].message, { cause: opts.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = opts.status ?? ERROR_CODES[code].status;
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
  }

  toJSON(): { code: string; message: string; detail?: unknown } {
    return { code: this.code, message: this.message, ...(this.detail !== undefined ? { detail: this.detail } : {}) };
  }
}

export const regError = (
  code: ErrorCode,
  detail?: unknown,
  opts: { message?: string; status?: number; headers?: Record<string, string>; cause?: unknown } = {},
) => new RegistryError(code, { ...opts, detail });

export function errorEnvelope(errs: RegistryError[]): string {
  return JSON.stringify({ errors: errs.map((e) => e.toJSON()) });
}
