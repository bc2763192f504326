// The pull-through cache (`proxy.remoteurl`): distribution's proxy as a
// decorator over the local stores, with berth's rules for what users find
// wrong in caches (specs-and-user-needs §6 items 15, 19):
//   - manifests by tag are revalidated with an upstream HEAD (cheap, and not a
//     counted pull on Docker Hub); when the upstream is unreachable, answers
//     5xx or 429, or refuses our credentials, the cached tag is served (stale)
//     instead of failing; a 404 from the upstream is authoritative;
//   - manifests by digest and blobs are served locally when cached, else
//     fetched once (concurrent requests for the same content share one
//     upstream fetch), verified by digest BEFORE they become visible, and
//     streamed to the first client while they are written (the last chunk is
//     held back until the digest verifies, so a client never receives a
//     complete wrong body);
//   - every cached manifest and blob gets a TTL (`proxy.ttl`, default 168h)
//     kept by a scheduler persisted in the root like distribution's;
//   - pushes and deletes are refused (UNSUPPORTED).
import { createHash, randomUUID } from 'node:crypto';
import type http from 'node:http';
import { KeyedMutex, Singleflight } from '../../concurrency/index.js';
import { type Logger, nullLogger } from '../../log/index.js';
import { type Digest, digestAlgorithm } from '../../oci/index.js';
import { RegistryError, regError } from '../errors.js';
import type { RegistryMetrics } from '../metrics.js';
import { checkDigest, isPathNotFound, listRepositories, pathFor, type RegistryStorage } from '../storage/index.js';
import { formatStartedAt } from '../storage/uploads.js';
import { CachedNow } from './cached-now.js';
import { ENTRY_BLOB, ENTRY_MANIFEST, TtlScheduler } from './scheduler.js';
import { Upstream } from './upstream.js';

export const DEFAULT_TTL_MS = 168 * 3600_000;
const ALL_MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];

const header = (h: Record<string, string | string[] | undefined>, k: string): string | undefined => {
  const v = h[k];
  return Array.isArray(v) ? v[0] : v;
};

export interface ProxyOptions {
  remoteurl: string;
  username?: string;
  password?: string;
  ttlMs?: number;
  logger?: Logger;
  metrics?: RegistryMetrics;
}

export class ProxyCache {
  readonly upstream: Upstream;
  readonly scheduler: TtlScheduler;
  private readonly ttlMs: number;
  private readonly log: Logger;
  private readonly manifestFlight = new Singleflight<Digest>();
  private readonly blobFlight = new Map<string, Promise<void>>();
  private readonly blobLock = new KeyedMutex();

  constructor(
    private readonly storage: RegistryStorage,
    private readonly opts: ProxyOptions,
  ) {
    this.upstream = new Upstream(opts.remoteurl, opts.username, opts.password);
    this.scheduler = new TtlScheduler(storage.driver);
    this.ttlMs = opts.ttlMs ?? DEFAULT_TTL_MS;
    this.log = opts.logger ?? nullLogger;
    this.scheduler.onBlobExpire = (name, d) => this.expireBlob(name, checkDigest(d));
    this.scheduler.onManifestExpire = async (name, d) => {
      await this.storage.manifests.delete(name, checkDigest(d));
    };
    this.scheduler.onError = (e, key) => this.log.error('proxy expiry failed', { key, error: String(e) });
  }

  start(): Promise<void> {
    return this.scheduler.start();
  }

  async stop(): Promise<void> {
    await this.scheduler.stop();
    await this.upstream.close();
  }

  private count(kind: 'blob' | 'manifest', result: 'hit' | 'miss' | 'stale'): void {
    this.opts.metrics?.proxy.inc({ kind, result });
  }

  private scope(name: string): string {
    return `repository:${name}:pull`;
  }

  /**
   * Makes the manifest `ref` (tag or digest) available locally and returns its
   * digest. Tags are revalidated upstream; see the file comment.
   */
  async manifest(name: string, ref: string, accept: string | undefined): Promise<Digest> {
    // One Accept header per type: distribution 2.8 parses each header value as a single media type.
    // A client accepting */* (or nothing we know) gets whatever the upstream stores.
    const listed = (accept ?? '')
      .split(',')
      .map((a) => a.split(';')[0]!.trim().toLowerCase())
      .filter(Boolean);
    const known = listed.filter((a) => ALL_MANIFEST_TYPES.includes(a));
    const acceptHdr = known.length && !listed.includes('*/*') ? known : ALL_MANIFEST_TYPES;
    if (ref.includes(':')) {
      const digest = checkDigest(ref);
      if (await this.storage.manifests.exists(name, digest)) {
        this.count('manifest', 'hit');
        return digest;
      }
      return this.manifestFlight.do(`${name}@${digest}`, () => this.fetchManifest(name, digest, undefined, acceptHdr));
    }
    let upstreamDigest: Digest | undefined;
    let why = '';
    try {
      const r = await this.upstream.fetch('HEAD', `/v2/${name}/manifests/${ref}`, {
        headers: { accept: acceptHdr },
        scope: this.scope(name),
      });
      await r.body.dump();
      if (r.status === 200) {
        const d = header(r.headers, 'docker-content-digest');
        upstreamDigest = d ? checkDigest(d) : undefined;
        if (!upstreamDigest) why = 'no Docker-Content-Digest';
      } else if (r.status === 404) {
        throw regError('MANIFEST_UNKNOWN', { name, tag: ref }, { message: 'manifest unknown upstream' });
      } else why = `upstream answered ${r.status}`;
    } catch (e) {
      if (e instanceof RegistryError) throw e;
      why = `upstream unreachable: ${(e as Error).message}`;
    }
    if (!upstreamDigest) {
      const local = await this.storage.manifests.resolveTag(name, ref);
      if (local && (await this.storage.manifests.exists(name, local))) {
        this.count('manifest', 'stale');
        this.log.warn('serving cached tag: upstream revalidation failed', { name, tag: ref, reason: why });
        return local;
      }
      if (why.startsWith('no Docker')) {
        return this.manifestFlight.do(`${name}:${ref}`, () => this.fetchManifest(name, undefined, ref, acceptHdr));
      }
      throw regError('UNAVAILABLE', { name, tag: ref }, { message: `not cached and ${why}`, status: 503 });
    }
    const digest = upstreamDigest;
    if (await this.storage.manifests.exists(name, digest)) {
      this.count('manifest', 'hit');
      if ((await this.storage.manifests.resolveTag(name, ref)) !== digest) await this.tagLocally(name, ref, digest);
      return digest;
    }
    await this.manifestFlight.do(`${name}@${digest}`, () => this.fetchManifest(name, digest, undefined, acceptHdr));
    await this.tagLocally(name, ref, digest);
    return digest;
  }

  private async tagLocally(name: string, tag: string, digest: Digest): Promise<void> {
    const body = await this.storage.manifests.get(name, digest);
    if (body) await this.storage.manifests.put(name, { tag }, body, '', { verifyReferences: false });
  }

  private async fetchManifest(
    name: string,
    digest: Digest | undefined,
    tag: string | undefined,
    accept: string[],
  ): Promise<Digest> {
    this.count('manifest', 'miss');
    let r: Awaited<ReturnType<Upstream['fetch']>>;
    try {
      r = await this.upstream.fetch('GET', `/v2/${name}/manifests/${digest ?? tag}`, {
        headers: { accept },
        scope: this.scope(name),
      });
    } catch (e) {
      throw regError(
        'UNAVAILABLE',
        { name },
        { message: `upstream unreachable: ${(e as Error).message}`, status: 503 },
      );
    }
    const body = Buffer.from(await r.body.arrayBuffer());
    if (r.status === 404) throw regError('MANIFEST_UNKNOWN', { name, reference: digest ?? tag });
    if (r.status === 429) throw regError('TOOMANYREQUESTS', { upstream: r.status });
    if (r.status !== 200) throw regError('UNAVAILABLE', { upstream: r.status }, { status: 503 });
    this.opts.metrics?.proxyBytes.inc({ kind: 'manifest' }, body.length);
    const alg = digest ? digestAlgorithm(digest) : 'sha256';
    const got = `${alg}:${createHash(alg).update(body).digest('hex')}` as Digest;
    if (digest && got !== digest) {
      throw regError(
        'UNAVAILABLE',
        { expected: digest, got },
        { status: 502, message: 'upstream manifest does not match its digest' },
      );
    }
    const res = await this.storage.manifests.put(
      name,
      { ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) },
      body,
      header(r.headers, 'content-type') ?? '',
      { verifyReferences: false },
    );
    this.scheduler.add(name, res.digest, this.ttlMs, ENTRY_MANIFEST);
    return res.digest;
  }

  /** Upstream size of a blob this cache does not hold (for HEAD). */
  async headBlob(name: string, digest: Digest): Promise<number> {
    let r: Awaited<ReturnType<Upstream['fetch']>>;
    try {
      r = await this.upstream.fetch('HEAD', `/v2/${name}/blobs/${digest}`, { scope: this.scope(name) });
    } catch (e) {
      throw regError(
        'UNAVAILABLE',
        { digest },
        { message: `upstream unreachable: ${(e as Error).message}`, status: 503 },
      );
    }
    await r.body.dump();
    if (r.status === 404) throw regError('BLOB_UNKNOWN', { digest });
    if (r.status !== 200) throw regError('UNAVAILABLE', { upstream: r.status }, { status: 503 });
    const n = Number(header(r.headers, 'content-length'));
    if (!Number.isSafeInteger(n) || n < 0)
      throw regError('UNAVAILABLE', { digest }, { status: 502, message: 'upstream gave no size' });
    return n;
  }

  /**
   * Serves a blob this cache does not hold. The first request streams from
   * the upstream (and caches); concurrent ones wait for that fetch and are
   * served from storage (`serveLocal`). Without `res`, only caches.
   */
  async fetchBlob(
    name: string,
    digest: Digest,
    res: http.ServerResponse | undefined,
    serveLocal: () => Promise<void>,
  ): Promise<void> {
    const key = `${name}@${digest}`;
    const running = this.blobFlight.get(key);
    if (running) {
      this.count('blob', 'hit');
      await running;
      return serveLocal();
    }
    this.count('blob', 'miss');
    const p = this.download(name, digest, res).finally(() => this.blobFlight.delete(key));
    this.blobFlight.set(key, p);
    await p;
  }

  private async download(name: string, digest: Digest, sink: http.ServerResponse | undefined): Promise<void> {
    let r: Awaited<ReturnType<Upstream['fetch']>>;
    try {
      r = await this.upstream.fetch('GET', `/v2/${name}/blobs/${digest}`, { scope: this.scope(name) });
    } catch (e) {
      throw regError(
        'UNAVAILABLE',
        { digest },
        { message: `upstream unreachable: ${(e as Error).message}`, status: 503 },
      );
    }
    if (r.status !== 200) {
      await r.body.dump();
      if (r.status === 404) throw regError('BLOB_UNKNOWN', { digest });
      if (r.status === 429) throw regError('TOOMANYREQUESTS', { upstream: 429 });
      throw regError('UNAVAILABLE', { upstream: r.status }, { status: 503 });
    }
    const declared = Number(header(r.headers, 'content-length'));
    const size = Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined;
    const id = randomUUID();
    const driver = this.storage.driver;
    const tmp = pathFor({ kind: 'uploadData', name, id });
    await driver.putContent(pathFor({ kind: 'uploadStartedAt', name, id }), formatStartedAt(new Date()));
    const w = await driver.writer(tmp, false);
    const hash = createHash(digestAlgorithm(digest));
    let client = sink;
    let clientGone = false;
    if (client) {
      client.once('close', () => {
        clientGone = true;
      });
      if (size !== undefined) {
        client.statusCode = 200;
        client.setHeader('Content-Type', 'application/octet-stream');
        client.setHeader('Content-Length', size);
        client.setHeader('Docker-Content-Digest', digest);
        client.setHeader('ETag', `"${digest}"`);
        client.setHeader('Accept-Ranges', 'bytes');
      } else client = undefined; // no length upstream: serve after caching
    }
    const send = async (chunk: Buffer) => {
      if (!client || clientGone) return;
      if (!client.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            client!.off('drain', done);
            client!.off('close', done);
            resolve();
          };
          client!.on('drain', done);
          client!.on('close', done);
        });
      }
    };
    let held: Buffer | undefined;
    let total = 0;
    try {
      for await (const c of r.body) {
        const chunk = c as Buffer;
        hash.update(chunk);
        total += chunk.length;
        await w.write(chunk);
        if (held) await send(held);
        held = chunk;
      }
      await w.commit();
    } catch (e) {
      await w.cancel().catch(() => {});
      await this.removeTmp(name, id);
      throw regError(
        'UNAVAILABLE',
        { digest },
        { status: 502, message: `upstream blob transfer failed: ${(e as Error).message}` },
      );
    }
    this.opts.metrics?.proxyBytes.inc({ kind: 'blob' }, total);
    const got = `${digestAlgorithm(digest)}:${hash.digest('hex')}`;
    if (got !== digest || (size !== undefined && total !== size)) {
      await this.removeTmp(name, id);
      this.log.error('upstream blob does not match its digest', { name, digest, got, size: size ?? -1, total });
      throw regError(
        'UNAVAILABLE',
        { expected: digest, got },
        { status: 502, message: 'upstream blob does not match its digest' },
      );
    }
    await this.blobLock.run(digest, () =>
      this.storage.gate.write(
        () => [digest],
        async () => {
          if (!(await this.storage.blobs.stat(digest))) await driver.move(tmp, pathFor({ kind: 'blobData', digest }));
          await this.storage.blobs.linkInRepo(name, digest);
        },
      ),
    );
    await this.removeTmp(name, id);
    this.scheduler.add(name, digest, this.ttlMs, ENTRY_BLOB);
    if (client && !clientGone) {
      if (held) await send(held);
      client.end();
    } else if (sink && !clientGone && !client) {
      // no upstream length: serve from storage now that it is cached
      throw new CachedNow();
    }
  }

  private async removeTmp(name: string, id: string): Promise<void> {
    try {
      await this.storage.driver.delete(pathFor({ kind: 'uploadDir', name, id }));
    } catch (e) {
      if (!isPathNotFound(e)) throw e;
    }
  }

  /** A cached blob's TTL ran out: unlink it here; remove the data when no repository links it. */
  private async expireBlob(name: string, digest: Digest): Promise<void> {
    await this.blobLock.run(digest, async () => {
      await this.storage.blobs.unlinkInRepo(name, digest);
      for (const repo of await listRepositories(this.storage.driver)) {
        if (await this.storage.blobs.statInRepo(repo, digest)) return;
      }
      try {
        await this.storage.driver.delete(pathFor({ kind: 'blobDir', digest }));
      } catch (e) {
        if (!isPathNotFound(e)) throw e;
      }
    });
  }

  /** Upstream tags (the cache's own when the upstream cannot answer). */
  async tags(name: string, query: string): Promise<string[] | undefined> {
    try {
      const r = await this.upstream.fetch('GET', `/v2/${name}/tags/list${query}`, { scope: this.scope(name) });
      const text = await r.body.text();
      if (r.status === 200) {
        const j = JSON.parse(text) as { tags?: string[] | null };
        return j.tags ?? [];
      }
      if (r.status === 404) return undefined;
    } catch (e) {
      this.log.warn('upstream tags/list failed; serving cached tags', { name, error: String(e) });
    }
    return this.storage.manifests.tags(name);
  }
}

/** Thrown by download() when it cached a blob it could not stream (no upstream length). */
export { CachedNow };
