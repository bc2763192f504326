// Credentials as the Engine API passes them (X-Registry-Auth: base64url JSON)
// and the authorisation flows of distribution's registry/client/auth: Bearer
// tokens (anonymous, basic credentials, OAuth2 refresh/identity tokens) with
// a per-scope cache, and Basic auth.
import { createHash, createHmac } from 'node:crypto';
import { invalidArgument } from '../../errors/index.js';

/** The Engine API's AuthConfig (X-Registry-Auth and POST /auth body). */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64("user:password"), as ~/.docker/config.json stores it. */
  auth?: string;
  email?: string;
  serveraddress?: string;
  /** An OAuth2 refresh token from a previous login. */
  identitytoken?: string;
  /** A bearer token to send as is. */
  registrytoken?: string;
}

/** Decodes an X-Registry-Auth header (base64url or standard base64 JSON). Empty → {}. */
export function decodeRegistryAuth(header: string | undefined | null): AuthConfig {
  if (!header || header.trim() === '') return {};
  let json: string;
  try {
    json = Buffer.from(header.trim().replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
  } catch {
    throw invalidArgument('invalid X-Registry-Auth header: not base64');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw invalidArgument(`invalid X-Registry-Auth header: ${(e as Error).message}`, e);
  }
  return normalizeAuthConfig(raw);
}

/** Accepts the JSON of an AuthConfig in any key case (the CLI sends lower case; Go accepts either). */
export function normalizeAuthConfig(raw: unknown): AuthConfig {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return {};
  const out: AuthConfig = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'string' || v === '') continue;
    const key = k.toLowerCase() as keyof AuthConfig;
    if (['username', 'password', 'auth', 'email', 'serveraddress', 'identitytoken', 'registrytoken'].includes(key))
      out[key] = v;
  }
  if (out.auth && !out.username && !out.password) {
    const s = Buffer.from(out.auth, 'base64').toString('utf8');
    const i = s.indexOf(':');
    if (i > 0) {
      out.username = s.slice(0, i);
      out.password = s.slice(i + 1);
    }
  }
  return out;
}

/** Encodes an AuthConfig the way the docker CLI does (base64url JSON). */
export function encodeRegistryAuth(a: AuthConfig): string {
  return Buffer.from(JSON.stringify(a)).toString('base64url');
}

export const hasCredentials = (a: AuthConfig) => !!((a.username && a.password) || a.identitytoken || a.registrytoken);

/** A stable key of the secret part of a config (cache keys; never logged). */
export function credentialKey(a: AuthConfig): string {
  if (!hasCredentials(a)) return 'anonymous';
  return createHash('sha256')
    .update(JSON.stringify([a.username ?? '', a.password ?? '', a.identitytoken ?? '', a.registrytoken ?? '']))
    .digest('hex')
    .slice(0, 32);
}

/**
 * moby's ComputeV2MetadataHMACKey: the digest string of the JSON of the
 * credential fields (omitempty), used to tag v2 metadata written by push.
 */
export function v2MetadataHmacKey(a: AuthConfig): string {
  const o: Record<string, string> = {};
  if (a.username) o.username = a.username;
  if (a.password) o.password = a.password;
  if (a.auth) o.auth = a.auth;
  if (a.identitytoken) o.identitytoken = a.identitytoken;
  if (a.registrytoken) o.registrytoken = a.registrytoken;
  return `sha256:${createHash('sha256').update(JSON.stringify(o)).digest('hex')}`;
}

/** `repository:<name>:pull,push` */
export function repositoryScope(name: string, actions: readonly string[]): string {
  return `repository:${name}:${actions.join(',')}`;
}

export interface TokenResponse {
  token?: string;
  access_token?: string;
  refresh_token?: string;
  expires_in?: number;
  issued_at?: string;
}

export interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Minimum token lifetime distribution's client assumes (seconds). */
export const MIN_TOKEN_LIFETIME = 60;

export function tokenFromResponse(tr: TokenResponse, now = Date.now()): CachedToken | undefined {
  const token = tr.access_token || tr.token;
  if (!token) return undefined;
  const lifetime = Math.max(MIN_TOKEN_LIFETIME, Number(tr.expires_in) || 0);
  let issued = now;
  if (tr.issued_at) {
    const t = Date.parse(tr.issued_at);
    if (Number.isFinite(t) && t <= now) issued = t;
  }
  // refresh 10 s early
  return { token, expiresAt: issued + lifetime * 1000 - 10_000 };
}

/** The HMAC moby stores with v2 metadata written by push (key from v2MetadataHmacKey). */
export function computeHmac(key: string, meta: { Digest: string; SourceRepository: string }): string {
  if (!key) return '';
  return createHmac('sha256', key).update(meta.Digest).update(meta.SourceRepository).digest('hex');
}
