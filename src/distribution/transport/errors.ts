// Registry errors worded as dockerd words them, so the docker CLI prints the
// same text: `<code lowercased>: <message>` for the registry's JSON errors
// (distribution errcode.Error), Go's `Get "<url>": dial tcp …` for transport
// failures, and the pull-level translations of moby's distribution/errors.go.
import { BerthError, type ErrorKind } from '../../errors/index.js';

export interface RegistryErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

/** Default messages of the distribution error codes (used when a registry sends none). */
const DEFAULT_MESSAGES: Record<string, string> = {
  UNAUTHORIZED: 'authentication required',
  DENIED: 'requested access to the resource is denied',
  MANIFEST_UNKNOWN: 'manifest unknown',
  NAME_UNKNOWN: 'repository name not known to registry',
  BLOB_UNKNOWN: 'blob unknown to registry',
  UNSUPPORTED: 'The operation is unsupported.',
  TOOMANYREQUESTS: 'too many requests',
};

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  416: 'Requested Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export const statusText = (s: number) => STATUS_TEXT[s] ?? '';

/** errcode.Error's text: "manifest unknown: manifest unknown". */
export function formatEntry(e: RegistryErrorEntry): string {
  return `${e.code.toLowerCase().replace(/_/g, ' ')}: ${e.message}`;
}

function kindForStatus(status: number, code?: string): ErrorKind {
  if (code === 'UNAUTHORIZED' || status === 401) return 'unauthorized';
  if (code === 'DENIED' || status === 403) return 'forbidden';
  if (code === 'MANIFEST_UNKNOWN' || code === 'NAME_UNKNOWN' || code === 'BLOB_UNKNOWN' || status === 404)
    return 'not-found';
  if (status === 429 || status >= 500) return 'unavailable';
  return 'invalid-argument';
}

/** An HTTP-level failure from a registry (status + its JSON errors, if any). */
export class RegistryError extends BerthError {
  constructor(
    readonly status: number,
    readonly errors: RegistryErrorEntry[],
    message: string,
    readonly url?: string,
  ) {
    super(kindForStatus(status, errors[0]?.code), message);
    this.name = 'RegistryError';
  }
  get code(): string | undefined {
    return this.errors[0]?.code;
  }
}

/** Parses a registry's error body (`{"errors":[…]}`) and makes the error dockerd would report. */
export function registryErrorFrom(
  status: number,
  body: Buffer | undefined,
  url: string,
  method: string,
): RegistryError {
  let entries: RegistryErrorEntry[] = [];
  if (body && body.length > 0) {
    try {
      const j = JSON.parse(body.toString('utf8')) as { errors?: unknown; details?: unknown };
      if (Array.isArray(j.errors)) {
        entries = j.errors
          .filter((e): e is { code: string; message?: string; detail?: unknown } => !!e && typeof e.code === 'string')
          .map((e) => ({
            code: e.code.toUpperCase(),
            message: typeof e.message === 'string' && e.message ? e.message : (DEFAULT_MESSAGES[e.code] ?? ''),
            ...(e.detail !== undefined ? { detail: e.detail } : {}),
          }));
      } else if (typeof j.details === 'string' && status === 401) {
        entries = [{ code: 'UNAUTHORIZED', message: j.details }];
      }
    } catch {
      // not JSON
    }
  }
  if (entries.length === 0) {
    // distribution's client turns bodiless 401s/404s into the matching errcode
    if (status === 401) entries = [{ code: 'UNAUTHORIZED', message: DEFAULT_MESSAGES.UNAUTHORIZED! }];
    else if (status === 429) entries = [{ code: 'TOOMANYREQUESTS', message: DEFAULT_MESSAGES.TOOMANYREQUESTS! }];
  }
  const text = entries.length
    ? formatEntry(entries[0]!)
    : `received unexpected HTTP status: ${status} ${statusText(status)}`.trimEnd();
  void method;
  return new RegistryError(status, entries, text, url);
}

const goMethod = (m: string) => m.charAt(0).toUpperCase() + m.slice(1).toLowerCase();

/** A failure to talk HTTP at all (refused, reset, DNS, TLS): retried and a reason to try the next endpoint. */
export class TransportError extends BerthError {
  constructor(
    message: string,
    readonly url: string,
    cause?: unknown,
  ) {
    super('unavailable', message, { cause });
    this.name = 'TransportError';
  }
}

function dialTarget(url: URL): string {
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return `${url.hostname}:${port}`;
}

/** Go's net/http wording for a Node/undici network error: `Get "http://h/v2/": dial tcp h:p: connect: connection refused`. */
export function transportErrorFrom(err: unknown, method: string, urlStr: string): TransportError {
  const url = new URL(urlStr);
  const chain: Array<{ code?: string; message?: string }> = [];
  for (let e = err as { code?: string; message?: string; cause?: unknown } | undefined, i = 0; e && i < 8; i++) {
    chain.push(e);
    e = e.cause as typeof e;
  }
  const codes = chain.map((e) => e.code ?? '');
  const msgs = chain.map((e) => e.message ?? '').join(' | ');
  let reason: string;
  if (codes.includes('ECONNREFUSED')) reason = `dial tcp ${dialTarget(url)}: connect: connection refused`;
  else if (codes.includes('ENOTFOUND') || codes.includes('EAI_AGAIN'))
    reason = `dial tcp: lookup ${url.hostname}: no such host`;
  else if (codes.includes('EHOSTUNREACH')) reason = `dial tcp ${dialTarget(url)}: connect: no route to host`;
  else if (codes.includes('ENETUNREACH')) reason = `dial tcp ${dialTarget(url)}: connect: network is unreachable`;
  else if (codes.includes('ETIMEDOUT') || codes.includes('UND_ERR_CONNECT_TIMEOUT'))
    reason = `dial tcp ${dialTarget(url)}: i/o timeout`;
  else if (codes.includes('ECONNRESET')) reason = `read tcp ${dialTarget(url)}: read: connection reset by peer`;
  else if (
    /wrong version number|packet length too long|ERR_SSL_/i.test(msgs) ||
    codes.some((c) => c.startsWith('ERR_SSL'))
  )
    reason = 'http: server gave HTTP response to HTTPS client';
  else if (/certificate|self[- ]signed|UNABLE_TO_VERIFY/i.test(msgs)) reason = `x509: ${chain[0]?.message ?? msgs}`;
  else if (codes.includes('UND_ERR_SOCKET') || /other side closed|terminated/i.test(msgs)) reason = 'unexpected EOF';
  else reason = chain[0]?.message ?? String(err);
  return new TransportError(`${goMethod(method)} "${urlStr}": ${reason}`, urlStr, err);
}

/** Should this error be retried (5xx, 429, transport failures), never 4xx. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof TransportError) return true;
  if (err instanceof RegistryError) return err.status >= 500 || err.status === 429;
  return false;
}
