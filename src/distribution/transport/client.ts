// The registry HTTP client: one undici dispatcher per TLS mode and proxy (connection
// pooling, keep-alive; HTTP(S)_PROXY / NO_PROXY through undici's proxy
// agent, which Node's fetch ignores), the /v2/ ping and its challenges,
// Bearer and Basic authorisation, retries with backoff on 5xx and transport
// failures (never on 4xx), redirects without leaking credentials, and the
// repository operations pull and push need.
//
// The registry's pull-through proxy has its own small client
// (src/registry/proxy/upstream.ts): this one carries engine configuration
// (hosts.ts: per-host TLS, mirrors, proxies), engine error wording, /v2/ ping
// caching, retries and refresh tokens that the proxy must not inherit.
import type { Readable } from 'node:stream';
import { Agent, type Dispatcher, EnvHttpProxyAgent, request } from 'undici';
import { BerthError, invalidArgument } from '../../errors/index.js';
import { DEFAULT_DOMAIN, type Digest } from '../../oci/index.js';
import {
  type AuthConfig,
  type CachedToken,
  credentialKey,
  hasCredentials,
  repositoryScope,
  type TokenResponse,
  tokenFromResponse,
} from './auth.js';
import { type Challenge, parseChallenges } from './challenge.js';
import {
  isRetryable,
  RegistryError,
  registryErrorFrom,
  statusText,
  TransportError,
  transportErrorFrom,
} from './errors.js';
import { DOCKER_HUB_INDEX, type Endpoint, RegistryHosts, type RegistryHostsConfig } from './hosts.js';

export interface ProxyConfig {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

export interface TransportOptions extends RegistryHostsConfig {
  /** max-download-attempts (default 5): tries per request / blob before giving up. */
  maxAttempts?: number;
  /** Base of the backoff between retries in ms (default 1000; blob downloads wait 5× this per attempt as dockerd). */
  retryBaseMs?: number;
  /** Proxies; default from HTTP_PROXY / HTTPS_PROXY / NO_PROXY (either case). */
  proxy?: ProxyConfig;
  userAgent?: string;
  /** Connect timeout in ms (default 30 s). */
  connectTimeoutMs?: number;
  /** Debug hook (the daemon passes its logger). */
  debug?: (msg: string, fields?: Record<string, string | number>) => void;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable & { text(): Promise<string>; arrayBuffer(): Promise<ArrayBuffer> };
  url: string;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
  /** Statuses that are success (default 2xx). */
  ok?: (status: number) => boolean;
  /** Retry on 5xx/transport errors (default true when the body is not a stream). */
  retry?: boolean;
  /** Extra token scopes (cross-repository mount). */
  scopes?: string[];
  /** Do not follow redirects. */
  noRedirect?: boolean;
  signal?: AbortSignal;
}

function envProxy(): ProxyConfig {
  const e = process.env;
  const p: ProxyConfig = {};
  const http = e.HTTP_PROXY ?? e.http_proxy;
  const https = e.HTTPS_PROXY ?? e.https_proxy;
  const no = e.NO_PROXY ?? e.no_proxy;
  if (http) p.httpProxy = http;
  if (https) p.httpsProxy = https;
  if (no) p.noProxy = no;
  return p;
}

export const header = (h: HttpResponse['headers'], name: string): string | undefined => {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
};

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });

/** Reads a whole body of at most `limit` bytes (destroyed, and "<what> is larger than …", past it). */
async function readLimited(body: HttpResponse['body'], limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > limit) {
      body.destroy();
      throw invalidArgument(`${what} is larger than ${limit} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

const readBody = (r: HttpResponse, limit = 1 << 20): Promise<Buffer> =>
  readLimited(r.body, limit, `response from ${r.url}`);

const discard = (r: HttpResponse) => {
  r.body.resume();
  r.body.on('error', () => {});
};

interface ChallengeEntry {
  challenges: Challenge[];
  at: number;
}

export class RegistryTransport {
  readonly hosts: RegistryHosts;
  maxAttempts: number;
  retryBaseMs: number;
  private readonly proxy: ProxyConfig;
  private readonly userAgent: string;
  private readonly connectTimeoutMs: number;
  readonly debug: (msg: string, fields?: Record<string, string | number>) => void;
  private readonly dispatchers = new Map<string, Dispatcher>();
  private readonly challenges = new Map<string, ChallengeEntry>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly refreshTokens = new Map<string, string>();

  constructor(opts: TransportOptions = {}) {
    this.hosts = new RegistryHosts(opts);
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.retryBaseMs = opts.retryBaseMs ?? 1000;
    this.proxy = opts.proxy ?? envProxy();
    this.userAgent = opts.userAgent ?? `berth/0.1.0 node/${process.versions.node} os/${process.platform}`;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 30_000;
    this.debug = opts.debug ?? (() => {});
  }

  /** Reload: new mirrors / insecure registries / attempts. */
  configure(cfg: RegistryHostsConfig & { maxAttempts?: number }): void {
    this.hosts.configure(cfg);
    if (cfg.maxAttempts !== undefined) this.maxAttempts = Math.max(1, cfg.maxAttempts);
  }

  async close(): Promise<void> {
    const ds = [...this.dispatchers.values()];
    this.dispatchers.clear();
    await Promise.all(ds.map((d) => d.close().catch(() => {})));
  }

  /**
   * The dispatcher for a request to a `scheme` URL. Proxies as Go's
   * ProxyFromEnvironment (dockerd) applies them: http URLs use HTTP_PROXY,
   * https URLs HTTPS_PROXY and never HTTP_PROXY (undici's EnvHttpProxyAgent
   * alone would send https through HTTP_PROXY when HTTPS_PROXY is unset);
   * NO_PROXY is matched by the agent.
   */
  private dispatcher(tlsVerify: boolean, scheme: 'http' | 'https'): Dispatcher {
    const proxy = scheme === 'https' ? this.proxy.httpsProxy : this.proxy.httpProxy;
    const key = `${tlsVerify ? 'verify' : 'noverify'}-${proxy ? scheme : 'direct'}`;
    let d = this.dispatchers.get(key);
    if (!d) {
      const connect = { rejectUnauthorized: tlsVerify, timeout: this.connectTimeoutMs };
      const common = { connect, keepAliveTimeout: 30_000, headersTimeout: 300_000, bodyTimeout: 300_000 };
      if (proxy) {
        d = new EnvHttpProxyAgent({
          ...common,
          httpProxy: proxy,
          httpsProxy: proxy,
          ...(this.proxy.noProxy !== undefined ? { noProxy: this.proxy.noProxy } : {}),
          requestTls: { rejectUnauthorized: tlsVerify },
        } as ConstructorParameters<typeof EnvHttpProxyAgent>[0]);
      } else d = new Agent(common);
      this.dispatchers.set(key, d);
    }
    return d;
  }

  /** One HTTP exchange (no auth, no retry); network failures become TransportError in Go's words. */
  async send(
    method: string,
    url: string,
    tlsVerify: boolean,
    opts: { headers?: Record<string, string>; body?: Buffer | string | Readable; signal?: AbortSignal } = {},
  ): Promise<HttpResponse> {
    try {
      const r = await request(url, {
        method: method as Dispatcher.HttpMethod,
        headers: { 'user-agent': this.userAgent, ...opts.headers },
        ...(opts.body !== undefined ? { body: opts.body } : {}),
        dispatcher: this.dispatcher(tlsVerify, url.startsWith('https:') ? 'https' : 'http'),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return { status: r.statusCode, headers: r.headers, body: r.body as unknown as HttpResponse['body'], url };
    } catch (e) {
      if (opts.signal?.aborted) throw new BerthError('cancelled', 'context canceled', { cause: e });
      throw transportErrorFrom(e, method, url);
    }
  }

  /** Backoff before retry `attempt` (1-based) of a control request. */
  backoff(attempt: number): number {
    return Math.min(this.retryBaseMs * 2 ** (attempt - 1), 10 * this.retryBaseMs);
  }

  /** Pings `<base>/v2/` and caches its challenges (5 min). Throws TransportError or RegistryError. */
  async ping(ep: Endpoint, signal?: AbortSignal, force = false): Promise<Challenge[]> {
    const hit = this.challenges.get(ep.base);
    if (hit && !force && Date.now() - hit.at < 300_000) return hit.challenges;
    const url = `${ep.base}/v2/`;
    let lastErr: unknown;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      try {
        const r = await this.send('GET', url, ep.tlsVerify, signal ? { signal } : {});
        if (r.status === 200 || r.status === 401) {
          discard(r);
          const ch = r.status === 401 ? parseChallenges(r.headers['www-authenticate']) : [];
          this.challenges.set(ep.base, { challenges: ch, at: Date.now() });
          return ch;
        }
        const body = await readBody(r).catch(() => undefined);
        throw registryErrorFrom(r.status, body, url, 'GET');
      } catch (e) {
        lastErr = e;
        // a refused connection or a TLS mismatch will not fix itself: let the caller fall back at once
        if (e instanceof TransportError || !isRetryable(e) || attempt === this.maxAttempts) throw e;
        await sleep(this.backoff(attempt), signal);
      }
    }
    throw lastErr;
  }

  /** A client for one repository at one endpoint. */
  repository(ep: Endpoint, path: string, auth: AuthConfig, actions: readonly string[]): RepositoryClient {
    return new RepositoryClient(this, ep, path, auth, actions);
  }

  /** Endpoints for a domain (see RegistryHosts.endpoints). */
  endpoints(domain: string, opts: { mirrors?: boolean } = {}): Promise<Endpoint[]> {
    return this.hosts.endpoints(domain, opts);
  }

  // ---------------------------------------------------------------- auth

  /** The Authorization header for `scopes` at `ep`, fetching a token when the registry wants Bearer. */
  async authorization(
    ep: Endpoint,
    auth: AuthConfig,
    scopes: string[],
    signal?: AbortSignal,
    opts: { offline?: boolean; forceRefresh?: boolean } = {},
  ): Promise<string | undefined> {
    const challenges = await this.ping(ep, signal);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      if (auth.registrytoken) return `Bearer ${auth.registrytoken}`;
      const tok = await this.token(ep, bearer, auth, scopes, signal, opts);
      return `Bearer ${tok}`;
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic && auth.username && auth.password) {
      return `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    }
    return undefined;
  }

  /** The refresh token a login obtained (the Engine API returns it as IdentityToken). */
  refreshTokenFor(ep: Endpoint, auth: AuthConfig): string | undefined {
    const ch = this.challenges.get(ep.base)?.challenges.find((c) => c.scheme === 'bearer');
    if (!ch) return undefined;
    return this.refreshTokens.get(`${ch.params.realm}|${ch.params.service ?? ''}|${credentialKey(auth)}`);
  }

  private async token(
    ep: Endpoint,
    ch: Challenge,
    auth: AuthConfig,
    scopes: string[],
    signal: AbortSignal | undefined,
    opts: { offline?: boolean; forceRefresh?: boolean },
  ): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw invalidArgument(`registry ${ep.base} sent a Bearer challenge without a realm`);
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw invalidArgument(`registry ${ep.base} sent an invalid token realm ${JSON.stringify(realm)}`);
    }
    const service = ch.params.service ?? '';
    const ck = credentialKey(auth);
    const sorted = [...scopes].sort();
    const key = `${realm}|${service}|${sorted.join(' ')}|${ck}`;
    const cached = this.tokens.get(key);
    if (cached && !opts.forceRefresh && cached.expiresAt > Date.now()) return cached.token;
    const rtKey = `${realm}|${service}|${ck}`;
    const refresh = auth.identitytoken ?? this.refreshTokens.get(rtKey);
    // the realm's own TLS settings: verify unless it is the (insecure) registry host itself
    const realmVerify =
      realmUrl.host === new URL(ep.base).host ? ep.tlsVerify : !(await this.hosts.isInsecure(realmUrl.host));
    let r: HttpResponse;
    if (refresh) {
      // OAuth2 (distribution fetchTokenWithOAuth): POST form with the refresh token
      const form = new URLSearchParams();
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', refresh);
      form.set('service', service);
      form.set('client_id', 'docker');
      form.set('scope', sorted.join(' '));
      if (opts.offline) form.set('access_type', 'offline');
      r = await this.send('POST', realm, realmVerify, {
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        ...(signal ? { signal } : {}),
      });
      if (r.status === 404 || r.status === 405) {
        // the token server has no OAuth endpoint: fall back to GET
        discard(r);
        r = await this.getToken(realmUrl, realmVerify, service, sorted, auth, opts, signal);
      }
    } else {
      r = await this.getToken(realmUrl, realmVerify, service, sorted, auth, opts, signal);
    }
    const body = await readBody(r).catch(() => Buffer.alloc(0));
    if (r.status !== 200) {
      const parsed = registryErrorFrom(r.status, body, realm, 'GET');
      if (parsed.errors.length && body.length) {
        throw new RegistryError(r.status, parsed.errors, parsed.message, realm);
      }
      const shown = new URL(r.url);
      throw new RegistryError(
        r.status,
        r.status === 401 ? [{ code: 'UNAUTHORIZED', message: 'authentication required' }] : [],
        `token auth attempt for registry: ${shown.toString()} request failed with status: ${r.status} ${statusText(r.status)}`,
        realm,
      );
    }
    let tr: TokenResponse;
    try {
      tr = JSON.parse(body.toString('utf8')) as TokenResponse;
    } catch (e) {
      throw invalidArgument(`unable to decode token response: ${(e as Error).message}`);
    }
    const tok = tokenFromResponse(tr);
    if (!tok) throw invalidArgument('authorization server did not include a token in the response');
    if (tr.refresh_token) this.refreshTokens.set(rtKey, tr.refresh_token);
    this.tokens.set(key, tok);
    if (this.tokens.size > 1000) this.tokens.delete(this.tokens.keys().next().value!);
    return tok.token;
  }

  private getToken(
    realm: URL,
    verify: boolean,
    service: string,
    scopes: string[],
    auth: AuthConfig,
    opts: { offline?: boolean },
    signal?: AbortSignal,
  ): Promise<HttpResponse> {
    const u = new URL(realm.toString());
    if (service) u.searchParams.set('service', service);
    for (const s of scopes) u.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (auth.username && auth.password) {
      u.searchParams.set('account', auth.username);
      headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
      if (opts.offline) {
        u.searchParams.set('offline_token', 'true');
        u.searchParams.set('client_id', 'docker');
      }
    }
    return this.send('GET', u.toString(), verify, { headers, ...(signal ? { signal } : {}) });
  }

  // ---------------------------------------------------------------- login

  /**
   * `docker login` (POST /auth): checks the credentials against the registry
   * and returns the identity (refresh) token when the registry gives one.
   */
  async checkLogin(
    auth: AuthConfig,
    signal?: AbortSignal,
  ): Promise<{ Status: 'Login Succeeded'; IdentityToken?: string }> {
    const domain = loginDomain(auth.serveraddress);
    const eps = await this.endpoints(domain, { mirrors: false });
    let lastErr: unknown;
    for (const ep of eps) {
      try {
        const challenges = await this.ping(ep, signal, true);
        const url = `${ep.base}/v2/`;
        if (challenges.length === 0) return { Status: 'Login Succeeded' };
        let authz: string | undefined;
        if (challenges.some((c) => c.scheme === 'bearer')) {
          authz = await this.authorization(ep, auth, [], signal, { offline: true, forceRefresh: true });
        } else authz = await this.authorization(ep, auth, [], signal);
        const r = await this.send('GET', url, ep.tlsVerify, {
          headers: authz ? { authorization: authz } : {},
          ...(signal ? { signal } : {}),
        });
        discard(r);
        if (r.status !== 200) {
          throw new RegistryError(
            r.status,
            [],
            `login attempt to ${url} failed with status: ${r.status} ${statusText(r.status)}`,
            url,
          );
        }
        const identity = this.refreshTokenFor(ep, auth);
        return { Status: 'Login Succeeded', ...(identity ? { IdentityToken: identity } : {}) };
      } catch (e) {
        lastErr = e;
        if (!(e instanceof TransportError)) break;
      }
    }
    if (lastErr instanceof RegistryError && lastErr.status === 401 && !lastErr.message.startsWith('login attempt')) {
      throw new RegistryError(401, lastErr.errors, lastErr.message, lastErr.url);
    }
    throw lastErr;
  }
}

/** The registry domain of a login's serveraddress ("" / Docker Hub index URLs → docker.io). */
export function loginDomain(serveraddress: string | undefined): string {
  const s = (serveraddress ?? '').trim();
  if (
    !s ||
    s === DOCKER_HUB_INDEX ||
    /^(https?:\/\/)?(index|registry-1)\.docker\.io(\/|$)/.test(s) ||
    s === 'docker.io'
  )
    return DEFAULT_DOMAIN;
  return s.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
}

export interface ManifestResponse {
  bytes: Buffer;
  mediaType: string;
  /** Docker-Content-Digest header, if sent. */
  headerDigest?: string;
}

/** Registry operations on one repository at one endpoint, with auth and retries. */
export class RepositoryClient {
  readonly scopes: string[];
  constructor(
    readonly transport: RegistryTransport,
    readonly endpoint: Endpoint,
    readonly path: string,
    readonly auth: AuthConfig,
    actions: readonly string[],
  ) {
    this.scopes = [repositoryScope(path, actions)];
  }

  private url(p: string): string {
    return `${this.endpoint.base}/v2/${this.path}/${p}`;
  }

  /**
   * An authorised request. Retries 5xx / transport failures (non-stream bodies
   * only), refreshes the token once on 401, follows redirects (dropping
   * Authorization across origins). Non-ok statuses throw RegistryError.
   */
  async request(method: string, url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
    const t = this.transport;
    const streaming = !!opts.body && typeof opts.body === 'object' && !Buffer.isBuffer(opts.body);
    const retry = opts.retry ?? !streaming;
    const ok = opts.ok ?? ((s: number) => s >= 200 && s < 300);
    const scopes = [...this.scopes, ...(opts.scopes ?? [])];
    let refreshed = false;
    let lastErr: unknown;
    for (let attempt = 1; attempt <= t.maxAttempts; attempt++) {
      try {
        const authz = await t.authorization(this.endpoint, this.auth, scopes, opts.signal, {
          forceRefresh: refreshed && attempt === 1,
        });
        let cur = url;
        let headers: Record<string, string> = { ...opts.headers, ...(authz ? { authorization: authz } : {}) };
        let r: HttpResponse;
        for (let hop = 0; ; hop++) {
          const verify = new URL(cur).host === new URL(this.endpoint.base).host ? this.endpoint.tlsVerify : true;
          r = await t.send(method, cur, verify, {
            headers,
            ...(opts.body !== undefined && hop === 0 ? { body: opts.body } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          const loc = header(r.headers, 'location');
          if (opts.noRedirect || !loc || ![301, 302, 303, 307, 308].includes(r.status) || hop >= 10) break;
          if (method !== 'GET' && method !== 'HEAD') break;
          discard(r);
          const next = new URL(loc, cur);
          if (next.origin !== new URL(cur).origin) {
            const { authorization: _drop, ...rest } = headers;
            headers = rest;
          }
          cur = next.toString();
        }
        if (ok(r.status)) return r;
        const body = method === 'HEAD' ? undefined : await readBody(r).catch(() => undefined);
        if (method === 'HEAD') discard(r);
        if (r.status === 401 && !refreshed) {
          // token expired, scope changed, or the registry challenges only now
          refreshed = true;
          const ch = parseChallenges(r.headers['www-authenticate']);
          if (ch.length || hasCredentials(this.auth)) {
            await t.ping(this.endpoint, opts.signal, true);
            attempt--;
            continue;
          }
        }
        throw registryErrorFrom(r.status, body, url, method);
      } catch (e) {
        lastErr = e;
        if (!retry || !isRetryable(e) || attempt >= t.maxAttempts) throw e;
        t.debug('retrying registry request', { method, url, attempt, err: (e as Error).message });
        await sleep(t.backoff(attempt), opts.signal);
      }
    }
    throw lastErr;
  }

  async getManifest(ref: string, accept: readonly string[], signal?: AbortSignal): Promise<ManifestResponse> {
    const r = await this.request('GET', this.url(`manifests/${ref}`), {
      headers: { accept: accept.join(', ') },
      ...(signal ? { signal } : {}),
    });
    const bytes = await readBody(r, 4 << 20);
    const ct = (header(r.headers, 'content-type') ?? '').split(';')[0]!.trim();
    const hd = header(r.headers, 'docker-content-digest');
    return { bytes, mediaType: ct, ...(hd ? { headerDigest: hd } : {}) };
  }

  /** HEAD a manifest: its digest, or undefined when unknown. */
  async headManifest(ref: string, accept: readonly string[]): Promise<{ digest?: string; size?: number } | undefined> {
    const r = await this.request('HEAD', this.url(`manifests/${ref}`), {
      headers: { accept: accept.join(', ') },
      ok: (s) => (s >= 200 && s < 300) || s === 404,
    });
    discard(r);
    if (r.status === 404) return undefined;
    const d = header(r.headers, 'docker-content-digest');
    const len = Number(header(r.headers, 'content-length'));
    return { ...(d ? { digest: d } : {}), ...(Number.isFinite(len) ? { size: len } : {}) };
  }

  async putManifest(ref: string, mediaType: string, bytes: Buffer): Promise<string | undefined> {
    const r = await this.request('PUT', this.url(`manifests/${ref}`), {
      headers: { 'content-type': mediaType },
      body: bytes,
    });
    discard(r);
    return header(r.headers, 'docker-content-digest');
  }

  /** HEAD a blob: its size, or undefined when the repository does not have it. */
  async statBlob(digest: Digest, signal?: AbortSignal): Promise<{ size: number } | undefined> {
    const r = await this.request('HEAD', this.url(`blobs/${digest}`), {
      ok: (s) => (s >= 200 && s < 300) || s === 404,
      ...(signal ? { signal } : {}),
    });
    discard(r);
    if (r.status === 404) return undefined;
    return { size: Number(header(r.headers, 'content-length') ?? -1) };
  }

  /** GET a blob from `offset` (Range). `partial` says whether the server honoured the range. */
  async getBlob(
    digest: Digest,
    offset = 0,
    signal?: AbortSignal,
  ): Promise<{ body: HttpResponse['body']; length?: number; partial: boolean }> {
    const r = await this.request('GET', this.url(`blobs/${digest}`), {
      headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
      retry: true,
      ...(signal ? { signal } : {}),
    });
    const len = Number(header(r.headers, 'content-length'));
    return { body: r.body, ...(Number.isFinite(len) ? { length: len } : {}), partial: r.status === 206 };
  }

  async fetchBlob(digest: Digest, limit: number, signal?: AbortSignal): Promise<Buffer> {
    const r = await this.getBlob(digest, 0, signal);
    return readLimited(r.body, limit, `blob ${digest}`);
  }

  /**
   * Starts an upload; with `mount`+`from`, tries a cross-repository mount
   * first. Returns {mounted:true} (201) or the upload location (202).
   */
  async startUpload(mount?: { digest: Digest; from: string }): Promise<{ mounted: true } | { location: string }> {
    let url = this.url('blobs/uploads/');
    const scopes: string[] = [];
    if (mount) {
      url += `?mount=${encodeURIComponent(mount.digest)}&from=${encodeURIComponent(mount.from)}`;
      scopes.push(repositoryScope(mount.from, ['pull']));
    }
    const r = await this.request('POST', url, { scopes, noRedirect: true, body: '' });
    discard(r);
    if (r.status === 201) return { mounted: true };
    const loc = header(r.headers, 'location');
    if (!loc) throw invalidArgument(`registry ${this.endpoint.base} started an upload without a Location`);
    return { location: new URL(loc, this.endpoint.base).toString() };
  }

  /** PATCH a streamed chunk (the whole blob), returning the next location. */
  async patchUpload(location: string, body: Readable, signal?: AbortSignal): Promise<string> {
    const r = await this.request('PATCH', location, {
      headers: { 'content-type': 'application/octet-stream' },
      body,
      retry: false,
      noRedirect: true,
      ...(signal ? { signal } : {}),
    });
    discard(r);
    const loc = header(r.headers, 'location');
    return loc ? new URL(loc, this.endpoint.base).toString() : location;
  }

  /** Completes an upload with PUT ?digest= (optionally with a body: monolithic upload). */
  async finishUpload(location: string, digest: Digest, body?: Buffer): Promise<void> {
    const u = new URL(location);
    u.searchParams.set('digest', digest);
    const r = await this.request('PUT', u.toString(), {
      headers: { 'content-type': 'application/octet-stream' },
      body: body ?? Buffer.alloc(0),
      noRedirect: true,
    });
    discard(r);
  }

  async cancelUpload(location: string): Promise<void> {
    try {
      const r = await this.request('DELETE', location, { retry: false, ok: () => true, noRedirect: true });
      discard(r);
    } catch {
      // best effort
    }
  }
}
