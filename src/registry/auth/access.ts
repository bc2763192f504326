// What a request needs (distribution's access records, `repository:<name>:<actions>`)
// and the controller interface. Apart from the controllers (auth/index.ts) so that a
// registry without auth never loads them (bcryptjs).
import type http from 'node:http';
import { regError } from '../errors.js';

export interface Access {
  type: 'repository' | 'registry';
  name: string;
  action: string;
}

export interface AuthContext {
  /** The authenticated user, or undefined for an anonymous request that was allowed. */
  user?: string;
}

export interface AccessController {
  /** Resolves when the request may proceed; throws UNAUTHORIZED (401, with a challenge) otherwise. */
  authorize(req: http.IncomingMessage, access: Access[]): Promise<AuthContext>;
}

/** `repository:a/b:pull,push repository:c:pull` — the scope parameter of a Bearer challenge. */
export function scopeString(access: Access[]): string {
  const byRes = new Map<string, string[]>();
  for (const a of access) {
    const k = `${a.type}:${a.name}`;
    const acts = byRes.get(k) ?? [];
    if (!acts.includes(a.action)) acts.push(a.action);
    byRes.set(k, acts);
  }
  return [...byRes].map(([k, acts]) => `${k}:${acts.join(',')}`).join(' ');
}

export function unauthorized(challenge: string, detail?: unknown, message?: string) {
  return regError('UNAUTHORIZED', detail, {
    headers: { 'WWW-Authenticate': challenge },
    ...(message ? { message } : {}),
  });
}

/** The access a route needs (distribution's app.go rules; `delete` for DELETE). */
export function accessFor(route: { r: string; name?: string }, method: string, query: URLSearchParams): Access[] {
  if (route.r === 'base') return [];
  if (route.r === 'catalog') return [{ type: 'registry', name: 'catalog', action: '*' }];
  const name = route.name;
  if (name === undefined) return [];
  const repo = (action: string): Access => ({ type: 'repository', name, action });
  if (method === 'GET' || method === 'HEAD') return [repo('pull')];
  if (method === 'DELETE' && (route.r === 'manifest' || route.r === 'blob')) return [repo('delete')];
  const out = [repo('pull'), repo('push')];
  const from = query.get('from');
  if (route.r === 'uploadStart' && query.get('mount') !== null && from)
    out.push({ type: 'repository', name: from, action: 'pull' });
  return out;
}
