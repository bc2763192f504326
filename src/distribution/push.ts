// docker push (moby distribution/push_v2.go + xfer/upload.go, redone): for
// every layer, reuse what the registry already has (HEAD by the digests the
// v2 metadata records, cross-repository mount from another repository of
// the same registry), else rebuild the tar byte-identically from the store,
// gzip it and upload it streamed; then the config blob and a schema2
// manifest byte-identical to what dockerd 20.10 writes.
import { createHash } from 'node:crypto';
import { type Readable, Transform } from 'node:stream';
import zlib from 'node:zlib';
import { BerthError, invalidArgument, isKind, notFound } from '../errors/index.js';
import type { ImageStore, ReferenceStore, V2MetadataService } from '../image/index.js';
import type { LayerStore } from '../layer/index.js';
import {
  chainIds,
  type Digest,
  familiarName,
  MediaType,
  parseNormalizedReference,
  type Reference,
  refName,
  sha256,
} from '../oci/index.js';
import { type ProgressSink, throttled } from './progress.js';
import type { DownloadLimiter } from './pull.js';
import {
  type AuthConfig,
  computeHmac,
  type Endpoint,
  isRetryable,
  type RegistryTransport,
  type RepositoryClient,
  TransportError,
  v2MetadataHmacKey,
} from './transport/index.js';

export interface PushContext {
  transport: RegistryTransport;
  layers: LayerStore;
  images: ImageStore;
  refs: ReferenceStore;
  metadata: V2MetadataService;
  uploads: DownloadLimiter;
  /** gzip level for uploaded layers (default 1: see README in index.ts). */
  compressionLevel: number;
}

export interface PushOptions {
  auth?: AuthConfig;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

export interface PushResult {
  tag: string;
  digest: Digest;
  size: number;
}

interface RemoteDescriptor {
  mediaType: string;
  size: number;
  digest: Digest;
}

const shortDiff = (d: Digest) => d.slice(d.indexOf(':') + 1, d.indexOf(':') + 13);

/** distribution's schema2 manifest as dockerd 20.10 serialises it (json.MarshalIndent, 3 spaces). */
export function schema2Manifest(config: RemoteDescriptor, layers: RemoteDescriptor[]): Buffer {
  const d = (x: RemoteDescriptor, ind: string) =>
    `{\n${ind}   "mediaType": ${JSON.stringify(x.mediaType)},\n${ind}   "size": ${x.size},\n${ind}   "digest": ${JSON.stringify(x.digest)}\n${ind}}`;
  const ls = layers.length ? `[\n${layers.map((l) => `      ${d(l, '      ')}`).join(',\n')}\n   ]` : '[]';
  return Buffer.from(
    `{\n   "schemaVersion": 2,\n   "mediaType": "${MediaType.dockerManifest}",\n   "config": ${d(config, '   ')},\n   "layers": ${ls}\n}`,
  );
}

/** The images to push for `ref`: its tag, or every tag of the repository. */
function associations(ctx: PushContext, ref: Reference): Array<{ tag: string; id: Digest }> {
  if (ref.digest) throw invalidArgument('cannot push a digest reference');
  if (ref.tag) {
    try {
      return [{ tag: ref.tag, id: ctx.refs.get(ref) }];
    } catch (e) {
      if (isKind(e, 'not-found')) throw notFound(`An image does not exist locally with the tag: ${familiarName(ref)}`);
      throw e;
    }
  }
  const list = ctx.refs
    .referencesByName(ref)
    .filter((a) => a.ref.tag && !a.ref.digest)
    .map((a) => ({ tag: a.ref.tag!, id: a.id }));
  if (list.length === 0) throw notFound(`An image does not exist locally with the tag: ${familiarName(ref)}`);
  return list;
}

class PushSession {
  /** diffId → remote descriptor, for layers already handled in this push (moby pushState.remoteLayers). */
  readonly remote = new Map<Digest, Promise<RemoteDescriptor>>();
  readonly hmacKey: string;
  constructor(
    readonly ctx: PushContext,
    readonly repo: RepositoryClient,
    readonly ref: Reference,
    readonly auth: AuthConfig,
    readonly progress: ProgressSink,
    readonly signal: AbortSignal | undefined,
  ) {
    this.hmacKey = v2MetadataHmacKey(auth);
  }

  private record(diffId: Digest, digest: Digest): void {
    this.ctx.metadata.tagAndAdd(diffId, this.hmacKey, { Digest: digest, SourceRepository: refName(this.ref) });
  }

  /** Existence check by HEAD in the target repository for the recorded digests. */
  private async exists(diffId: Digest, candidates: Array<{ Digest: Digest }>): Promise<RemoteDescriptor | undefined> {
    const seen = new Set<string>();
    for (const c of candidates) {
      if (seen.has(c.Digest) || seen.size >= 3) continue;
      seen.add(c.Digest);
      const st = await this.repo.statBlob(c.Digest, this.signal);
      if (st) {
        this.record(diffId, c.Digest);
        return { mediaType: MediaType.dockerLayerGzip, size: st.size, digest: c.Digest };
      }
    }
    return undefined;
  }

  async pushLayer(diffId: Digest, chain: Digest): Promise<RemoteDescriptor> {
    const id = shortDiff(diffId);
    const { ctx, repo, ref } = this;
    const meta = ctx.metadata.getMetadata(diffId).reverse(); // newest first
    const sameRepo = meta.filter((m) => m.SourceRepository === refName(ref));
    const hit = await this.exists(diffId, sameRepo);
    if (hit) {
      this.progress.update(id, 'Layer already exists');
      return hit;
    }
    // cross-repository mount from another repository of this registry; HMAC matches first
    const others = meta
      .filter((m) => m.SourceRepository !== refName(ref))
      .filter((m) => {
        try {
          return parseNormalizedReference(m.SourceRepository).domain === ref.domain;
        } catch {
          return false;
        }
      })
      .sort(
        (a, b) => Number(b.HMAC === computeHmac(this.hmacKey, b)) - Number(a.HMAC === computeHmac(this.hmacKey, a)),
      );
    for (const c of others.slice(0, 4)) {
      const from = parseNormalizedReference(c.SourceRepository).path;
      const r = await this.repo.startUpload({ digest: c.Digest, from });
      if ('mounted' in r) {
        this.progress.update(id, `Mounted from ${from}`);
        const st = await repo.statBlob(c.Digest, this.signal);
        this.record(diffId, c.Digest);
        return { mediaType: MediaType.dockerLayerGzip, size: st?.size ?? -1, digest: c.Digest };
      }
      await repo.cancelUpload(r.location);
    }
    const other = await this.exists(diffId, others);
    if (other) {
      this.progress.update(id, 'Layer already exists');
      return other;
    }
    // upload, with retries (the tar is rebuilt from the store each time)
    const t = ctx.transport;
    for (let attempt = 1; ; attempt++) {
      try {
        const d = await this.upload(diffId, chain, id);
        this.progress.update(id, 'Pushed');
        this.record(diffId, d.digest);
        return d;
      } catch (e) {
        if (!isRetryable(e) || attempt >= t.maxAttempts || this.signal?.aborted) throw e;
        const delay = t.retryBaseMs * 5 * attempt;
        this.progress.update(id, `Retrying in ${Math.ceil(delay / 1000)} seconds`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async upload(diffId: Digest, chain: Digest, id: string): Promise<RemoteDescriptor> {
    const { ctx, repo } = this;
    const layer = ctx.layers.get(chain);
    try {
      const start = await repo.startUpload();
      if ('mounted' in start) throw new BerthError('internal', 'registry mounted a blob nobody asked for');
      const tar = layer.tarStream();
      const report = throttled(this.progress, id, 'Pushing');
      let read = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _e, cb) {
          read += chunk.length;
          report(read, layer.size);
          cb(null, chunk);
        },
      });
      const hash = createHash('sha256');
      let size = 0;
      const digester = new Transform({
        transform(chunk: Buffer, _e, cb) {
          hash.update(chunk);
          size += chunk.length;
          cb(null, chunk);
        },
      });
      const gz = zlib.createGzip({ level: ctx.compressionLevel, chunkSize: 256 * 1024 });
      const fail = (e: Error) => digester.destroy(e);
      tar.on('error', fail);
      counter.on('error', fail);
      gz.on('error', fail);
      const body: Readable = tar.pipe(counter).pipe(gz).pipe(digester);
      let loc: string;
      try {
        loc = await repo.patchUpload(start.location, body, this.signal);
      } catch (e) {
        await repo.cancelUpload(start.location);
        throw e;
      }
      const digest = `sha256:${hash.digest('hex')}` as Digest;
      await repo.finishUpload(loc, digest);
      void diffId;
      return { mediaType: MediaType.dockerLayerGzip, size, digest };
    } finally {
      await ctx.layers.release(chain).catch(() => {});
    }
  }

  async pushConfig(raw: Buffer): Promise<RemoteDescriptor> {
    const digest = sha256(raw);
    const desc = { mediaType: MediaType.dockerConfig, size: raw.length, digest };
    if (await this.repo.statBlob(digest, this.signal)) return desc;
    const start = await this.repo.startUpload();
    if ('mounted' in start) return desc;
    await this.repo.finishUpload(start.location, digest, raw);
    return desc;
  }
}

async function pushTo(
  ctx: PushContext,
  ep: Endpoint,
  ref: Reference,
  opts: PushOptions,
  progress: ProgressSink,
): Promise<PushResult[]> {
  const auth = opts.auth ?? {};
  await ctx.transport.ping(ep, opts.signal);
  const repo = ctx.transport.repository(ep, ref.path, auth, ['pull', 'push']);
  const session = new PushSession(ctx, repo, ref, auth, progress, opts.signal);
  const results: PushResult[] = [];
  for (const { tag, id } of associations(ctx, ref)) {
    const img = ctx.images.get(id);
    const diffIds = img.config.rootfs.diff_ids;
    const chain = chainIds(diffIds);
    // hold the image's layers for the whole push
    const top = chain.at(-1);
    if (top) ctx.layers.get(top);
    try {
      for (let i = diffIds.length - 1; i >= 0; i--) {
        if (!session.remote.has(diffIds[i]!)) progress.update(shortDiff(diffIds[i]!), 'Preparing');
      }
      const descs: Array<Promise<RemoteDescriptor>> = [];
      for (let i = diffIds.length - 1; i >= 0; i--) {
        const diffId = diffIds[i]!;
        let p = session.remote.get(diffId);
        if (p) {
          progress.update(shortDiff(diffId), 'Layer already exists');
        } else {
          if (ctx.uploads.busy) progress.update(shortDiff(diffId), 'Waiting');
          p = ctx.uploads.run(() => session.pushLayer(diffId, chain[i]!));
          session.remote.set(diffId, p);
        }
        descs[i] = p;
      }
      const settled = await Promise.allSettled(descs);
      const bad = settled.find((s) => s.status === 'rejected');
      if (bad) throw (bad as PromiseRejectedResult).reason;
      const layers = settled.map((s) => (s as PromiseFulfilledResult<RemoteDescriptor>).value);
      const cfg = await session.pushConfig(img.raw);
      const manifest = schema2Manifest(cfg, layers);
      await repo.putManifest(tag, MediaType.dockerManifest, manifest);
      const digest = sha256(manifest);
      progress.update('', `${tag}: digest: ${digest} size: ${manifest.length}`);
      const dref: Reference = { domain: ref.domain, path: ref.path, digest };
      let old: Digest | undefined;
      try {
        old = ctx.refs.get(dref);
      } catch {
        old = undefined;
      }
      if (old !== id) {
        if (old) ctx.refs.delete(dref);
        ctx.refs.addDigest(dref, id);
      }
      progress.aux?.({ Tag: tag, Digest: digest, Size: manifest.length });
      results.push({ tag, digest, size: manifest.length });
    } finally {
      if (top) await ctx.layers.release(top).catch(() => {});
    }
  }
  return results;
}

/** Pushes `ref` (a tag, or every tag of the repository) to its registry. */
export async function push(ctx: PushContext, ref: Reference, opts: PushOptions = {}): Promise<PushResult[]> {
  const progress = opts.progress ?? { update() {} };
  associations(ctx, ref); // fail before printing anything, as dockerd does
  progress.update('', `The push refers to repository [${refName(ref)}]`);
  const eps = await ctx.transport.endpoints(ref.domain, { mirrors: false });
  let lastErr: unknown;
  for (const ep of eps) {
    try {
      return await pushTo(ctx, ep, ref, opts, progress);
    } catch (e) {
      lastErr = e;
      if (e instanceof TransportError && !opts.signal?.aborted) continue;
      break;
    }
  }
  throw lastErr;
}
