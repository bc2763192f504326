// A minimal upstream registry client for the pull-through cache, on undici:
// GET/HEAD with the distribution auth dance (a 401's `WWW-Authenticate`
// challenge: Basic with proxy.username/password, or Bearer — fetch a token
// from the realm for the request's scope, cache it until it expires).
// Not shared with the engine's client (src/distribution/transport): the proxy
// passes upstream statuses through (a 404 is an answer, not an error), learns
// the challenge from the first 401 instead of pinging /v2/, and never retries
// on its own; the registry also must not import engine code.
import { Agent, type Dispatcher, request } from 'undici';

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…"` (one challenge; the first scheme wins). */
export function parseChallenge(h: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(h);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  const rest = m[2]!;
  re.lastIndex = 0;
  for (let x = re.exec(rest); x; x = re.exec(rest)) params[x[1]!.toLowerCase()] = x[2] ?? x[3] ?? '';
  return { scheme: m[1]!.toLowerCase(), params };
}

export class Upstream {
  readonly base: URL;
  private readonly agent: Agent;
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, { token: string; expires: number }>();

  constructor(
    remoteurl: string,
    private readonly username?: string,
    private readonly password?: string,
    opts: { timeoutMs?: number } = {},
  ) {
    this.base = new URL(remoteurl);
    this.agent = new Agent({
      connect: { timeout: opts.timeoutMs ?? 10_000 },
      headersTimeout: opts.timeoutMs ?? 30_000,
      bodyTimeout: 120_000,
      keepAliveTimeout: 30_000,
    });
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  private basic(): string | undefined {
    if (this.username === undefined) return undefined;
    return `Basic ${Buffer.from(`${this.username}:${this.password ?? ''}`).toString('base64')}`;
  }

  private async token(scope: string): Promise<string | undefined> {
    const ch = this.challenge;
    if (ch?.scheme !== 'bearer' || !ch.params.realm) return undefined;
    const cached = this.tokens.get(scope);
    if (cached && cached.expires > Date.now()) return cached.token;
    const u = new URL(ch.params.realm);
    if (ch.params.service) u.searchParams.set('service', ch.params.service);
    if (scope) u.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    const b = this.basic();
    if (b) headers.authorization = b;
    const r = await request(u, { method: 'GET', headers, dispatcher: this.agent });
    const text = await r.body.text();
    if (r.statusCode !== 200) throw new Error(`token server ${u.origin} answered ${r.statusCode}`);
    const j = JSON.parse(text) as { token?: string; access_token?: string; expires_in?: number };
    const token = j.token ?? j.access_token;
    if (!token) throw new Error('token server returned no token');
    const ttl = Math.max(10, (j.expires_in ?? 60) - 5) * 1000;
    this.tokens.set(scope, { token, expires: Date.now() + ttl });
    return token;
  }

  private async authHeader(scope: string): Promise<string | undefined> {
    if (!this.challenge) return undefined;
    if (this.challenge.scheme === 'basic') return this.basic();
    const t = await this.token(scope);
    return t ? `Bearer ${t}` : undefined;
  }

  /** A request to `/v2/…` on the upstream; retries once after learning a challenge. */
  async fetch(
    method: 'GET' | 'HEAD',
    path: string,
    opts: { headers?: Record<string, string | string[]>; scope?: string } = {},
  ): Promise<UpstreamResponse> {
    const url = new URL(path, this.base);
    const scope = opts.scope ?? '';
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers: Record<string, string | string[]> = { 'user-agent': 'berth-registry-proxy', ...opts.headers };
      const auth = await this.authHeader(scope);
      if (auth) headers.authorization = auth;
      const r = await request(url, { method, headers, dispatcher: this.agent, maxRedirections: 5 });
      if (r.statusCode === 401 && attempt === 0) {
        const h = r.headers['www-authenticate'];
        const ch = parseChallenge(Array.isArray(h) ? h[0]! : (h ?? ''));
        await r.body.dump();
        if (!ch) return { status: 401, headers: r.headers, body: r.body };
        this.challenge = ch;
        this.tokens.delete(scope);
        continue;
      }
      return { status: r.statusCode, headers: r.headers, body: r.body };
    }
    throw new Error('unreachable');
  }
}
