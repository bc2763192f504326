// The HTTP API of the OCI distribution spec 1.1 on node:http. Routing follows
// the spec's name grammar (names contain slashes); every failure is rendered
// as the spec's JSON error envelope from the one table in errors.ts.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { type Logger, nullLogger } from '../log/index.js';
import { type Digest, isIndexMediaType, MediaType } from '../oci/index.js';
import { type AccessController, accessFor } from './auth/access.js';
import { parseAddr, type RegistryConfig } from './config.js';
import { errorEnvelope, RegistryError, regError } from './errors.js';
import { type GcOptions, type GcResult, garbageCollect } from './gc.js';
import type { RegistryMetrics } from './metrics.js';
import { CachedNow } from './proxy/cached-now.js';
import type { ProxyCache } from './proxy/proxy.js';
import {
  checkDigest,
  checkName,
  checkUploadId,
  listRepositories,
  paginate,
  purgeUploads,
  RegistryStorage,
  rangeHeaders,
  type StorageDriver,
} from './storage/index.js';

type Route =
  | { r: 'base' }
  | { r: 'catalog' }
  | { r: 'tags'; name: string }
  | { r: 'manifest'; name: string; ref: string }
  | { r: 'blob'; name: string; digest: string }
  | { r: 'uploadStart'; name: string }
  | { r: 'upload'; name: string; id: string }
  | { r: 'referrers'; name: string; digest: string }
  | { r: 'health' };

const ROUTES: Array<[RegExp, (m: string[]) => Route]> = [
  [/^\/v2\/?$/, () => ({ r: 'base' })],
  [/^\/v2\/_catalog\/?$/, () => ({ r: 'catalog' })],
  [/^\/v2\/(.+)\/tags\/list\/?$/, (m) => ({ r: 'tags', name: m[1]! })],
  [/^\/v2\/(.+)\/manifests\/([^/]+)$/, (m) => ({ r: 'manifest', name: m[1]!, ref: m[2]! })],
  [/^\/v2\/(.+)\/blobs\/uploads\/?$/, (m) => ({ r: 'uploadStart', name: m[1]! })],
  [/^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ r: 'upload', name: m[1]!, id: m[2]! })],
  [/^\/v2\/(.+)\/blobs\/([^/]+)$/, (m) => ({ r: 'blob', name: m[1]!, digest: m[2]! })],
  [/^\/v2\/(.+)\/referrers\/([^/]+)$/, (m) => ({ r: 'referrers', name: m[1]!, digest: m[2]! })],
  [/^\/debug\/health$/, () => ({ r: 'health' })],
];

const ALLOWED: Record<Route['r'], string[]> = {
  base: ['GET', 'HEAD'],
  catalog: ['GET'],
  tags: ['GET'],
  manifest: ['GET', 'HEAD', 'PUT', 'DELETE'],
  blob: ['GET', 'HEAD', 'DELETE'],
  uploadStart: ['POST'],
  upload: ['GET', 'PATCH', 'PUT', 'DELETE'],
  referrers: ['GET'],
  health: ['GET', 'HEAD'],
};

export function matchRoute(pathname: string): Route | undefined {
  for (const [re, mk] of ROUTES) {
    const m = re.exec(pathname);
    if (!m) continue;
    let parts: string[];
    try {
      parts = m.map((x) => (x === undefined ? x : decodeURIComponent(x)));
    } catch {
      return undefined;
    }
    return mk(parts);
  }
  return undefined;
}

export interface AccessLogEntry {
  remote: string;
  method: string;
  url: string;
  status: number;
  bytes: number;
  ms: number;
  userAgent: string;
}

export interface RegistryAppOptions {
  deleteEnabled?: boolean;
  readOnly?: boolean;
  manifestMaxBytes?: number;
  logger?: Logger;
  accessLog?: (e: AccessLogEntry) => void;
  auth?: AccessController;
  metrics?: RegistryMetrics;
  /** Pull-through cache mode (proxy.remoteurl): pushes are refused. */
  proxy?: ProxyOptionsLike;
  /**
   * The ProxyCache class, required with `proxy`: startRegistry loads it only for a
   * pull-through cache (it brings undici, ~18 MiB of resident memory).
   */
  proxyClass?: typeof ProxyCache;
}

type ProxyOptionsLike = ConstructorParameters<typeof ProxyCache>[1];

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function isDigestRef(ref: string): boolean {
  return ref.includes(':');
}

function parseIntParam(v: string | null, what: string): number | undefined {
  if (v === null) return undefined;
  if (!/^\d{1,9}$/.test(v)) throw regError('PAGINATION_NUMBER_INVALID', { [what]: v });
  return Number(v);
}

/** Parses `start-end` (also `bytes start-end/total` and `bytes=start-end`). */
function parseContentRange(v: string): { start: number; end: number } {
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(v.trim());
  if (!m)
    throw regError('BLOB_UPLOAD_INVALID', { contentRange: v }, { message: 'malformed Content-Range', status: 416 });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start)
    throw regError('BLOB_UPLOAD_INVALID', { contentRange: v }, { message: 'invalid Content-Range', status: 416 });
  return { start, end };
}

function acceptList(req: http.IncomingMessage): string[] {
  const raw = req.headers.accept;
  const vals = Array.isArray(raw) ? raw : raw ? [raw] : [];
  return vals
    .flatMap((v) => v.split(','))
    .map((s) => s.split(';')[0]!.trim().toLowerCase())
    .filter(Boolean);
}

const KNOWN_MANIFEST_TYPES = new Set<string>([
  MediaType.ociManifest,
  MediaType.ociIndex,
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
]);

export class RegistryApp {
  readonly storage: RegistryStorage;
  readonly proxy: ProxyCache | undefined;
  readonly metrics: RegistryMetrics | undefined;
  private readonly log: Logger;
  private readonly auth: AccessController | undefined;
  constructor(
    readonly driver: StorageDriver,
    private readonly opts: RegistryAppOptions = {},
  ) {
    this.metrics = opts.metrics;
    this.storage = new RegistryStorage(opts.metrics ? opts.metrics.instrument(driver) : driver);
    this.log = opts.logger ?? nullLogger;
    this.auth = opts.auth;
    if (opts.proxy && !opts.proxyClass) throw new Error('RegistryApp: proxy needs proxyClass');
    this.proxy =
      opts.proxy && opts.proxyClass
        ? new opts.proxyClass(this.storage, {
            ...opts.proxy,
            ...(opts.metrics ? { metrics: opts.metrics } : {}),
            logger: this.log,
          })
        : undefined;
  }

  /** Health: the storage driver answers (distribution's storagedriver check). */
  async health(): Promise<Record<string, string>> {
    const failures: Record<string, string> = {};
    try {
      await this.storage.driver.stat('/');
    } catch (e) {
      if (!(e instanceof Error && e.name === 'PathNotFoundError'))
        failures[`storagedriver_${this.storage.driver.name}`] = (e as Error).message;
    }
    return failures;
  }

  /** Runs garbage collection in this process: pushes continue while it marks (see gc.ts). */
  async collectGarbage(opts: Omit<GcOptions, 'gate'> = {}): Promise<GcResult> {
    try {
      return await garbageCollect(this.driver, { ...opts, gate: this.storage.gate });
    } finally {
      // Lookups validate every entry anyway; dropping them all after a sweep also frees their memory.
      this.storage.blobs.invalidate();
    }
  }

  /** The node:http request listener. */
  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const t0 = process.hrtime.bigint();
    res.on('finish', () => {
      const m = this.metrics;
      if (m) {
        const route = (res as RouteTagged).berthRoute ?? 'unknown';
        const method = req.method ?? '-';
        m.requests.inc({ method, route, code: String(res.statusCode) });
        m.latency.observe({ method, route }, Number(process.hrtime.bigint() - t0) / 1e9);
        const len = Number(res.getHeader('content-length') ?? 0);
        if (len > 0 && method !== 'HEAD') m.bytesSent.inc({ route }, len);
      }
      this.opts.accessLog?.({
        remote: req.socket.remoteAddress ?? '-',
        method: req.method ?? '-',
        url: req.url ?? '-',
        status: res.statusCode,
        bytes: Number(res.getHeader('content-length') ?? 0),
        ms: Number(process.hrtime.bigint() - t0) / 1e6,
        userAgent: String(req.headers['user-agent'] ?? ''),
      });
    });
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    this.dispatch(req, res).catch((e: unknown) => this.fail(req, res, e));
  };

  private fail(req: http.IncomingMessage, res: http.ServerResponse, e: unknown): void {
    let err: RegistryError;
    if (e instanceof RegistryError) err = e;
    else {
      this.log.error('registry request failed', { method: req.method ?? '', url: req.url ?? '', error: String(e) });
      err = regError('UNKNOWN', undefined, { message: (e as Error)?.message ?? String(e) });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = errorEnvelope([err]);
    for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
    res.statusCode = err.status;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    if (!req.complete) req.resume();
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    // The raw path, never URL-normalised: `a/%2e%2e/b` must be refused as a name, not resolved to `b`.
    const rawUrl = req.url ?? '/';
    const qi = rawUrl.indexOf('?');
    const pathname = qi === -1 ? rawUrl : rawUrl.slice(0, qi);
    const q = new URLSearchParams(qi === -1 ? '' : rawUrl.slice(qi + 1));
    const route = matchRoute(pathname);
    if (!route) {
      throw regError('NAME_UNKNOWN', { path: pathname }, { status: 404, message: 'no such route' });
    }
    (res as RouteTagged).berthRoute = route.r;
    if (!ALLOWED[route.r].includes(method)) {
      res.setHeader('Allow', ALLOWED[route.r].join(', '));
      throw regError('UNSUPPORTED', { method }, { message: `method ${method} not allowed` });
    }
    if ('name' in route) checkName(route.name);
    if (this.auth && route.r !== 'health') {
      try {
        await this.auth.authorize(req, accessFor(route, method, q));
      } catch (e) {
        drain(req);
        throw e;
      }
    }
    if (this.opts.readOnly && MUTATING.has(method)) {
      throw regError('UNSUPPORTED', undefined, { message: 'registry is in read-only mode' });
    }
    if (this.proxy && MUTATING.has(method)) {
      throw regError('UNSUPPORTED', undefined, { message: 'a pull-through cache does not accept pushes or deletes' });
    }
    switch (route.r) {
      case 'base':
        return this.json(res, 200, {}, req);
      case 'health': {
        const failures = await this.health();
        return this.json(res, Object.keys(failures).length ? 503 : 200, failures, req);
      }
      case 'catalog':
        return this.catalog(req, res, q);
      case 'tags':
        return this.tagsList(req, res, route.name, q);
      case 'manifest':
        if (method === 'PUT') return this.putManifest(req, res, route.name, route.ref);
        if (method === 'DELETE') return this.deleteManifest(res, route.name, route.ref);
        return this.getManifest(req, res, route.name, route.ref);
      case 'blob':
        if (method === 'DELETE') return this.deleteBlob(res, route.name, route.digest);
        return this.getBlob(req, res, route.name, route.digest);
      case 'uploadStart':
        return this.startUpload(req, res, route.name, q);
      case 'upload':
        checkUploadId(route.id);
        if (method === 'GET') return this.uploadStatus(res, route.name, route.id);
        if (method === 'PATCH') return this.patchUpload(req, res, route.name, route.id);
        if (method === 'PUT') return this.putUpload(req, res, route.name, route.id, q);
        return this.cancelUpload(res, route.name, route.id);
      case 'referrers':
        return this.referrers(req, res, route.name, route.digest, q);
    }
  }

  private json(
    res: http.ServerResponse,
    status: number,
    body: unknown,
    req: http.IncomingMessage,
    type = 'application/json',
  ): void {
    const text = JSON.stringify(body);
    res.statusCode = status;
    res.setHeader('Content-Type', type === 'application/json' ? 'application/json; charset=utf-8' : type);
    res.setHeader('Content-Length', Buffer.byteLength(text));
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  private empty(res: http.ServerResponse, status: number, headers: Record<string, string | number> = {}): void {
    res.statusCode = status;
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.setHeader('Content-Length', 0);
    res.end();
  }

  // ---- catalog and tags ----

  private async catalog(req: http.IncomingMessage, res: http.ServerResponse, q: URLSearchParams): Promise<void> {
    const n = parseIntParam(q.get('n'), 'n');
    const last = q.get('last') ?? undefined;
    const page = paginate(await listRepositories(this.driver), n, last);
    if (page.more && n !== undefined && page.items.length) {
      const next = new URLSearchParams({ last: page.items.at(-1)!, n: String(n) });
      res.setHeader('Link', `</v2/_catalog?${next}>; rel="next"`);
    }
    this.json(res, 200, { repositories: page.items }, req);
  }

  private async tagsList(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    name: string,
    q: URLSearchParams,
  ): Promise<void> {
    const n = parseIntParam(q.get('n'), 'n');
    const last = q.get('last') ?? undefined;
    const all = this.proxy ? await this.proxy.tags(name, '') : await this.storage.manifests.tags(name);
    if (!all) throw regError('NAME_UNKNOWN', { name });
    if (this.proxy) all.sort();
    const page = paginate(all, n, last);
    if (page.more && n !== undefined && page.items.length) {
      const next = new URLSearchParams({ last: page.items.at(-1)!, n: String(n) });
      res.setHeader('Link', `</v2/${name}/tags/list?${next}>; rel="next"`);
    }
    this.json(res, 200, { name, tags: page.items }, req);
  }

  // ---- manifests ----

  private async resolve(name: string, ref: string): Promise<Digest> {
    if (isDigestRef(ref)) return checkDigest(ref);
    const d = /^[\w][\w.-]{0,127}$/.test(ref) ? await this.storage.manifests.resolveTag(name, ref) : undefined;
    if (!d)
      throw regError('MANIFEST_UNKNOWN', { name, tag: ref }, { message: `manifest unknown: tag ${ref} not found` });
    return d;
  }

  private async getManifest(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    name: string,
    ref: string,
  ): Promise<void> {
    let digest = this.proxy
      ? await this.proxy.manifest(name, ref, acceptList(req).length ? String(req.headers.accept) : undefined)
      : await this.resolve(name, ref);
    let body = await this.storage.manifests.get(name, digest);
    if (!body) throw regError('MANIFEST_UNKNOWN', { name, reference: ref });
    let info = await this.storage.manifests.info(digest, body);
    let mediaType = info?.mediaType ?? MediaType.ociManifest;
    const accepts = acceptList(req);
    const negotiating =
      accepts.some((a) => KNOWN_MANIFEST_TYPES.has(a)) && !accepts.includes('*/*') && !accepts.includes(mediaType);
    if (negotiating) {
      // A client that cannot read indexes gets the linux/amd64 image (as distribution does).
      let picked = false;
      if (isIndexMediaType(mediaType)) {
        const idx = JSON.parse(body.toString('utf8')) as {
          manifests?: Array<{ digest: string; mediaType: string; platform?: { os?: string; architecture?: string } }>;
        };
        const child = idx.manifests?.find(
          (m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64' && accepts.includes(m.mediaType),
        );
        if (child) {
          const cd = checkDigest(child.digest);
          const cb = await this.storage.manifests.get(name, cd);
          if (cb) {
            digest = cd;
            body = cb;
            info = await this.storage.manifests.info(cd, cb);
            mediaType = info?.mediaType ?? child.mediaType;
            picked = true;
          }
        }
      }
      if (!picked) {
        throw regError(
          'MANIFEST_UNKNOWN',
          { mediaType, accept: accepts },
          { message: `manifest is ${mediaType}, which the Accept header does not allow` },
        );
      }
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', mediaType);
    res.setHeader('Content-Length', body.length);
    res.setHeader('Docker-Content-Digest', digest);
    res.setHeader('ETag', `"${digest}"`);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private async putManifest(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    name: string,
    ref: string,
  ): Promise<void> {
    const reference: { tag?: string; digest?: Digest } = {};
    if (isDigestRef(ref)) reference.digest = checkDigest(ref);
    else if (/^[\w][\w.-]{0,127}$/.test(ref)) reference.tag = ref;
    else throw regError('TAG_INVALID', { tag: ref }, { message: 'invalid tag' });
    const limit = this.opts.manifestMaxBytes ?? 4 * 1024 * 1024;
    const body = await readBody(req, limit);
    const r = await this.storage.manifests.put(name, reference, body, String(req.headers['content-type'] ?? ''));
    const headers: Record<string, string> = {
      Location: `/v2/${name}/manifests/${r.digest}`,
      'Docker-Content-Digest': r.digest,
    };
    if (r.subject) headers['OCI-Subject'] = r.subject;
    this.empty(res, 201, headers);
  }

  private async deleteManifest(res: http.ServerResponse, name: string, ref: string): Promise<void> {
    if (!this.opts.deleteEnabled)
      throw regError('UNSUPPORTED', undefined, { message: 'deletes are disabled (storage.delete.enabled)' });
    if (isDigestRef(ref)) {
      const d = checkDigest(ref);
      if (!(await this.storage.manifests.delete(name, d))) throw regError('MANIFEST_UNKNOWN', { name, digest: d });
    } else if (!/^[\w][\w.-]{0,127}$/.test(ref) || !(await this.storage.manifests.untag(name, ref))) {
      throw regError('MANIFEST_UNKNOWN', { name, tag: ref });
    }
    this.empty(res, 202);
  }

  // ---- blobs ----

  private async getBlob(req: http.IncomingMessage, res: http.ServerResponse, name: string, ref: string): Promise<void> {
    const digest = checkDigest(ref);
    let desc = await this.storage.blobs.statInRepo(name, digest);
    if (!desc && this.proxy) {
      if (req.method === 'HEAD') {
        const size = await this.proxy.headBlob(name, digest);
        res.statusCode = 200;
        res.setHeader('Content-Type', 'application/octet-stream');
        res.setHeader('Docker-Content-Digest', digest);
        res.setHeader('Accept-Ranges', 'bytes');
        res.setHeader('Content-Length', size);
        res.end();
        return;
      }
      const serveLocal = () => this.getBlob(req, res, name, ref);
      if (req.headers.range) {
        await this.proxy.fetchBlob(name, digest, undefined, async () => {});
        desc = await this.storage.blobs.statInRepo(name, digest);
      } else {
        try {
          return await this.proxy.fetchBlob(name, digest, res, serveLocal);
        } catch (e) {
          if (!(e instanceof CachedNow)) throw e;
          desc = await this.storage.blobs.statInRepo(name, digest);
        }
      }
    }
    if (!desc) throw regError('BLOB_UNKNOWN', { digest });
    let start = 0;
    let end = desc.size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      if (!m || (m[1] === '' && m[2] === '')) {
        throw regError(
          'BLOB_UNKNOWN',
          { range },
          { status: 416, message: 'invalid Range', headers: { 'Content-Range': `bytes */${desc.size}` } },
        );
      }
      if (m[1] === '') {
        start = Math.max(0, desc.size - Number(m[2]));
      } else {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(end, Number(m[2]));
      }
      if (start >= desc.size || start > end) {
        throw regError(
          'BLOB_UNKNOWN',
          { range },
          { status: 416, message: 'range not satisfiable', headers: { 'Content-Range': `bytes */${desc.size}` } },
        );
      }
      status = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${desc.size}`);
    }
    const length = desc.size === 0 ? 0 : end - start + 1;
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', length);
    res.setHeader('Docker-Content-Digest', digest);
    res.setHeader('ETag', `"${digest}"`);
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Cache-Control', 'max-age=31536000');
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    try {
      await this.storage.blobs.copyTo(digest, start, length, res);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (res.destroyed || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED') {
        res.destroy(); // the client went away
        return;
      }
      if (!res.headersSent && e instanceof Error && e.name === 'PathNotFoundError') {
        // removed (garbage collection) between the stat and the open
        for (const h of ['Docker-Content-Digest', 'ETag', 'Accept-Ranges', 'Cache-Control', 'Content-Range'])
          res.removeHeader(h);
        throw regError('BLOB_UNKNOWN', { digest });
      }
      this.log.error('blob read failed', { digest, error: String(e) });
      res.destroy();
      return;
    }
    res.end();
  }

  private async deleteBlob(res: http.ServerResponse, name: string, ref: string): Promise<void> {
    if (!this.opts.deleteEnabled)
      throw regError('UNSUPPORTED', undefined, { message: 'deletes are disabled (storage.delete.enabled)' });
    const digest = checkDigest(ref);
    if (
      !(await this.storage.blobs.statInRepo(name, digest)) ||
      !(await this.storage.blobs.unlinkInRepo(name, digest))
    ) {
      throw regError('BLOB_UNKNOWN', { digest });
    }
    this.empty(res, 202, { 'Docker-Content-Digest': digest });
  }

  // ---- uploads ----

  private async startUpload(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    name: string,
    q: URLSearchParams,
  ): Promise<void> {
    const mount = q.get('mount');
    const from = q.get('from');
    if (mount !== null) {
      const digest = checkDigest(mount);
      if (from !== null) {
        checkName(from);
        const mounted = await this.storage.gate.write(
          () => [digest],
          async () => {
            if (!(await this.storage.blobs.statInRepo(from, digest))) return false;
            await this.storage.blobs.linkInRepo(name, digest);
            return true;
          },
        );
        if (mounted) {
          this.metrics?.uploads.inc({ result: 'mounted' });
          drain(req);
          return this.empty(res, 201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
        }
      }
      // not mountable: fall back to a new upload session
    }
    const dq = q.get('digest');
    if (dq !== null && mount === null) {
      const digest = checkDigest(dq);
      const up = await this.storage.uploads.create(name);
      const length = contentLength(req);
      try {
        await this.storage.uploads.commit(name, up.id, digest, req, length === undefined ? {} : { length });
      } catch (e) {
        await this.storage.uploads.cancel(name, up.id).catch(() => {});
        this.metrics?.uploads.inc({ result: 'failed' });
        throw e;
      }
      this.metrics?.uploads.inc({ result: 'completed' });
      return this.empty(res, 201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
    }
    drain(req);
    const up = await this.storage.uploads.create(name);
    this.empty(res, 202, rangeHeaders(name, up.id, 0));
  }

  private async uploadStatus(res: http.ServerResponse, name: string, id: string): Promise<void> {
    const st = await this.storage.uploads.status(name, id);
    this.empty(res, 204, rangeHeaders(name, id, st.size));
  }

  private async patchUpload(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    name: string,
    id: string,
  ): Promise<void> {
    const cr = req.headers['content-range'];
    const length = contentLength(req);
    const opts: { start?: number; length?: number } = {};
    if (cr) {
      const { start, end } = parseContentRange(cr);
      opts.start = start;
      opts.length = end - start + 1;
      if (length !== undefined && length !== opts.length) {
        throw regError(
          'SIZE_INVALID',
          { contentRange: cr, contentLength: length },
          { message: 'Content-Length does not match Content-Range' },
        );
      }
    } else if (length !== undefined) opts.length = length;
    const st = await this.storage.uploads.append(name, id, req, opts);
    this.empty(res, 202, rangeHeaders(name, id, st.size));
  }

  private async putUpload(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    name: string,
    id: string,
    q: URLSearchParams,
  ): Promise<void> {
    const dq = q.get('digest');
    if (dq === null) throw regError('DIGEST_INVALID', undefined, { message: 'digest query parameter missing' });
    const digest = checkDigest(dq);
    const length = contentLength(req);
    const cr = req.headers['content-range'];
    const opts: { start?: number; length?: number } = {};
    if (cr && length !== 0) {
      const { start, end } = parseContentRange(cr);
      opts.start = start;
      opts.length = end - start + 1;
    } else if (length !== undefined) opts.length = length;
    const hasBody = length === undefined ? req.headers['transfer-encoding'] !== undefined : length > 0;
    if (!hasBody) drain(req);
    if (opts.start !== undefined) {
      const st = await this.storage.uploads.status(name, id);
      if (st.size !== opts.start) {
        throw regError(
          'BLOB_UPLOAD_INVALID',
          { expectedStart: st.size, gotStart: opts.start },
          { status: 416, message: 'chunk out of order', headers: rangeHeaders(name, id, st.size) },
        );
      }
    }
    let desc: Awaited<ReturnType<RegistryStorage['uploads']['commit']>>;
    try {
      desc = await this.storage.uploads.commit(
        name,
        id,
        digest,
        hasBody ? req : undefined,
        opts.length === undefined ? {} : { length: opts.length },
      );
    } catch (e) {
      this.metrics?.uploads.inc({ result: 'failed' });
      throw e;
    }
    this.metrics?.uploads.inc({ result: 'completed' });
    this.empty(res, 201, { Location: `/v2/${name}/blobs/${desc.digest}`, 'Docker-Content-Digest': desc.digest });
  }

  private async cancelUpload(res: http.ServerResponse, name: string, id: string): Promise<void> {
    await this.storage.uploads.cancel(name, id);
    this.empty(res, 204);
  }

  // ---- referrers ----

  private async referrers(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    name: string,
    ref: string,
    q: URLSearchParams,
  ): Promise<void> {
    const digest = checkDigest(ref);
    const artifactType = q.get('artifactType') ?? undefined;
    const manifests = await this.storage.manifests.referrers(name, digest, artifactType);
    if (artifactType !== undefined) res.setHeader('OCI-Filters-Applied', 'artifactType');
    this.json(res, 200, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, req, MediaType.ociIndex);
  }
}

type RouteTagged = http.ServerResponse & { berthRoute?: string };

function contentLength(req: http.IncomingMessage): number | undefined {
  const v = req.headers['content-length'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function drain(req: http.IncomingMessage): void {
  if (!req.complete) req.resume();
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = contentLength(req);
  if (declared !== undefined && declared > limit) {
    throw regError(
      'SIZE_INVALID',
      { limit, size: declared },
      { status: 413, message: `manifest larger than ${limit} bytes` },
    );
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of req) {
    total += (c as Buffer).length;
    if (total > limit) {
      throw regError('SIZE_INVALID', { limit }, { status: 413, message: `manifest larger than ${limit} bytes` });
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** One line per request, in the combined log format distribution writes. */
export function formatAccessLog(e: AccessLogEntry): string {
  const t = new Date();
  const ts = t.toISOString();
  return `${e.remote} - - [${ts}] "${e.method} ${e.url} HTTP/1.1" ${e.status} ${e.bytes} "" ${JSON.stringify(e.userAgent)} ${e.ms.toFixed(3)}ms\n`;
}

export interface RunningRegistry {
  app: RegistryApp;
  server: http.Server | https.Server;
  address: AddressInfo;
  url: string;
  /** The debug server's URL when http.debug.addr is set. */
  debugUrl?: string;
  close(): Promise<void>;
}

/** Starts a registry from a validated config (the composition root for `serve`). */
export async function startRegistry(
  cfg: RegistryConfig,
  deps: { driver: StorageDriver; logger?: Logger; accessLog?: (line: string) => void; metrics?: RegistryMetrics },
): Promise<RunningRegistry> {
  const logger = deps.logger ?? nullLogger;
  let auth: AccessController | undefined;
  // Auth, metrics (prom-client) and the pull-through cache (undici) are loaded only when
  // configured: together they are ~30 MiB of resident memory a plain registry does not need.
  if (cfg.auth?.htpasswd) {
    const h = cfg.auth.htpasswd;
    const { HtpasswdController } = await import('./auth/htpasswd.js');
    auth = new HtpasswdController(h.realm, h.path, h.anonymousread);
  } else if (cfg.auth?.token) {
    const t = cfg.auth.token;
    const { TokenController } = await import('./auth/token.js');
    auth = new TokenController(t.realm, t.service, t.issuer, t.rootcertbundle);
  }
  const accessLog = cfg.log.accessLogDisabled ? undefined : deps.accessLog;
  const metrics =
    deps.metrics ??
    (cfg.http.debug?.prometheus.enabled ? new (await import('./metrics.js')).RegistryMetrics() : undefined);
  const app = new RegistryApp(deps.driver, {
    deleteEnabled: cfg.storage.deleteEnabled,
    readOnly: cfg.storage.readOnly,
    manifestMaxBytes: cfg.http.manifestMaxBytes,
    logger,
    ...(accessLog ? { accessLog: (e: AccessLogEntry) => accessLog(formatAccessLog(e)) } : {}),
    ...(auth ? { auth } : {}),
    ...(metrics ? { metrics } : {}),
    ...(cfg.proxy
      ? {
          proxyClass: (await import('./proxy/proxy.js')).ProxyCache,
          proxy: {
            remoteurl: cfg.proxy.remoteurl,
            ...(cfg.proxy.username !== undefined ? { username: cfg.proxy.username } : {}),
            ...(cfg.proxy.password !== undefined ? { password: cfg.proxy.password } : {}),
            ...(cfg.proxy.ttl !== undefined ? { ttlMs: cfg.proxy.ttl } : {}),
          },
        }
      : {}),
  });
  await app.proxy?.start();
  const server = cfg.http.tls
    ? https.createServer(
        { cert: fs.readFileSync(cfg.http.tls.certificate), key: fs.readFileSync(cfg.http.tls.key) },
        app.handle,
      )
    : http.createServer(app.handle);
  server.keepAliveTimeout = 65_000;
  const { host, port } = parseAddr(cfg.http.addr);
  await listen(server, port, host);
  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${cfg.http.tls ? 'https' : 'http'}://${hostForUrl}:${address.port}`;
  logger.info('listening', { addr: `${hostForUrl}:${address.port}`, tls: Boolean(cfg.http.tls) });

  let debug: { server: http.Server; url: string } | undefined;
  if (cfg.http.debug) {
    const d = cfg.http.debug;
    const ds = http.createServer((req, res) => {
      void debugHandler(app, metrics, d.prometheus.path, req, res).catch((e: unknown) => {
        if (!res.headersSent) {
          res.statusCode = 500;
          res.end(String(e));
        } else res.destroy();
      });
    });
    const da = parseAddr(d.addr);
    await listen(ds, da.port, da.host);
    const a = ds.address() as AddressInfo;
    debug = { server: ds, url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` };
    logger.info('debug server listening', { url: debug.url });
  }

  const timers: NodeJS.Timeout[] = [];
  let closed = false;
  const every = (name: string, firstMs: number, intervalMs: number, fn: () => Promise<void>) => {
    const slot = timers.length;
    const run = async () => {
      try {
        await fn();
      } catch (e) {
        logger.error(`${name} failed`, { error: String(e) });
      }
      if (closed) return;
      const t = setTimeout(run, intervalMs);
      t.unref();
      timers[slot] = t;
    };
    const t = setTimeout(run, firstMs);
    t.unref();
    timers.push(t);
  };
  if (cfg.storage.uploadPurging.enabled && !cfg.storage.readOnly) {
    const { ageMs, intervalMs, dryRun } = cfg.storage.uploadPurging;
    // distribution waits a random jitter before the first run; a short fixed delay suffices here.
    every('upload purge', Math.min(intervalMs, 60_000), intervalMs, async () => {
      const r = await purgeUploads(app.storage.driver, new Date(Date.now() - ageMs), dryRun);
      if (r.removed.length || r.errors.length)
        logger.info('purged stale uploads', { removed: r.removed.length, errors: r.errors.length, dryRun });
    });
  }
  if (cfg.storage.gc.enabled && !cfg.storage.readOnly) {
    const g = cfg.storage.gc;
    every('garbage collection', g.intervalMs, g.intervalMs, async () => {
      const r = await app.collectGarbage({ removeUntagged: g.deleteUntagged, dryRun: g.dryRun, graceMs: g.graceMs });
      logger.info('garbage collection done', {
        marked: r.marked,
        blobsDeleted: r.blobsDeleted.length,
        manifestsDeleted: r.manifestsDeleted.length,
        dryRun: r.dryRun,
      });
    });
  }
  return {
    app,
    server,
    address,
    url,
    ...(debug ? { debugUrl: debug.url } : {}),
    close: async () => {
      closed = true;
      for (const t of timers) clearTimeout(t);
      await app.proxy?.stop();
      await Promise.all(
        [server, debug?.server]
          .filter((x): x is http.Server => !!x)
          .map(
            (srv) =>
              new Promise<void>((resolve) => {
                srv.close(() => resolve());
                srv.closeAllConnections?.();
              }),
          ),
      );
    },
  };
}

function listen(server: http.Server | https.Server, port: number, host: string | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The debug server: Prometheus metrics, health, and POST /debug/gc (berth: online collection). */
async function debugHandler(
  app: RegistryApp,
  metrics: RegistryMetrics | undefined,
  metricsPath: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const u = new URL(req.url ?? '/', 'http://debug');
  if (metrics && u.pathname === metricsPath && req.method === 'GET') {
    const text = await metrics.registry.metrics();
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.end(text);
    return;
  }
  if (u.pathname === '/debug/health') {
    const failures = await app.health();
    res.statusCode = Object.keys(failures).length ? 503 : 200;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(failures));
    return;
  }
  if (u.pathname === '/debug/gc' && req.method === 'POST') {
    const flag = (k: string) => ['1', 'true'].includes(u.searchParams.get(k) ?? '');
    const lines: string[] = [];
    const r = await app.collectGarbage({
      dryRun: flag('dryrun'),
      removeUntagged: flag('deleteuntagged'),
      emit: (l) => lines.push(l),
    });
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end(JSON.stringify({ ...r, log: lines }));
    return;
  }
  res.statusCode = 404;
  res.end();
}
