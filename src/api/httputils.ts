// Request/response helpers with dockerd's semantics (moby daemon/server/httputils).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BerthError, invalidArgument } from '../errors/index.js';

/** Docker's boolean query values: "", "0", "no", "false", "none" are false; anything else is true. */
export function boolValue(q: URLSearchParams, key: string): boolean {
  const s = (q.get(key) ?? '').trim().toLowerCase();
  return !(s === '' || s === '0' || s === 'no' || s === 'false' || s === 'none');
}

/** boolValue when the key is present, `def` otherwise. */
export function boolValueOrDefault(q: URLSearchParams, key: string, def: boolean): boolean {
  return q.has(key) ? boolValue(q, key) : def;
}

/** An integer query value (0 when absent); a non-integer is invalid-argument. */
export function intValue(q: URLSearchParams, key: string, def = 0): number {
  const v = q.get(key);
  if (v === null || v === '') return def;
  if (!/^-?\d+$/.test(v)) throw invalidArgument(`strconv.ParseInt: parsing ${JSON.stringify(v)}: invalid syntax`);
  return Number(v);
}

export function writeJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** Default limit for JSON request bodies (dockerd reads them unbounded; we cap at 16 MiB). */
export const MAX_JSON_BODY = 16 << 20;

/** Reads the whole body (refusing more than `limit` bytes). */
export async function readBody(req: IncomingMessage, limit = MAX_JSON_BODY): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > limit) throw new BerthError('invalid-argument', `request body too large (limit ${limit} bytes)`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * moby httputils.ReadJSON: the body must be JSON (Content-Type application/json
 * when set); an empty body is `undefined`, malformed JSON is invalid-argument.
 */
export async function readJson<T>(req: IncomingMessage, limit = MAX_JSON_BODY): Promise<T | undefined> {
  const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (ct !== '' && ct !== 'application/json') {
    throw invalidArgument(`unsupported Content-Type header (${ct}): must be 'application/json'`);
  }
  const body = await readBody(req, limit);
  if (body.length === 0 || body.toString().trim() === '') return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch (e) {
    throw invalidArgument(`invalid JSON: ${(e as Error).message}`);
  }
}
