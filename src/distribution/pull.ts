// docker pull (moby distribution/pull_v2.go + xfer/download.go, redone):
// resolve the reference to a manifest (an index resolved to the daemon's
// platform), fetch and verify the config, then download the layers
// (max-concurrent-downloads at once, deduplicated across concurrent pulls)
// and register them in order, pipelined (see spool.ts). On any failure every
// reference this pull took is given back, so the stores are as they were.
import { createHash } from 'node:crypto';
import { pipeline, type Readable, Transform } from 'node:stream';
import { BerthError, invalidArgument, isKind } from '../errors/index.js';
import { type ImageStore, parseImageConfig, type ReferenceStore, type V2MetadataService } from '../image/index.js';
import type { Layer, LayerStore } from '../layer/index.js';
import {
  chainIds,
  type Descriptor,
  type Digest,
  familiarString,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  isDigest,
  isIndexMediaType,
  layerCompression,
  MediaType,
  type Platform,
  type Reference,
  refName,
  sha256,
} from '../oci/index.js';
import { chooseCompression, decompressor } from './decompress.js';
import { FanoutProgress, type ProgressSink, shortDigest, throttled } from './progress.js';
import { Spool } from './spool.js';
import {
  type AuthConfig,
  type Endpoint,
  isRetryable,
  RegistryError,
  type RegistryTransport,
  type RepositoryClient,
  TransportError,
} from './transport/index.js';

export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
  // asked for so that a schema1-only registry answers and we can refuse it clearly
  MediaType.dockerManifestV1Signed,
  'application/json',
] as const;

const MAX_CONFIG = 8 << 20;

export interface PullResult {
  imageId: Digest;
  manifestDigest: Digest;
  /** The reference as recorded (`host/name:tag` or `host/name@digest`). */
  reference: Reference;
  /** Did the reference move (dockerd: "Downloaded newer image" vs "Image is up to date")? */
  updated: boolean;
}

export interface PullContext {
  transport: RegistryTransport;
  layers: LayerStore;
  images: ImageStore;
  refs: ReferenceStore;
  metadata: V2MetadataService;
  tmpDir: string;
  downloads: DownloadLimiter;
  flights: LayerFlights;
  platform: Platform;
}

export interface PullOptions {
  auth?: AuthConfig;
  progress?: ProgressSink;
  signal?: AbortSignal;
  platform?: Platform;
}

/** The daemon's platform (linux/amd64 here), as moby's platforms.DefaultSpec. */
export function defaultPlatform(): Platform {
  const arch: Record<string, string> = {
    x64: 'amd64',
    arm64: 'arm64',
    arm: 'arm',
    ia32: '386',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
  };
  const a = arch[process.arch] ?? process.arch;
  const p: Platform = { os: 'linux', architecture: a };
  if (a === 'arm64') p.variant = 'v8';
  if (a === 'arm') p.variant = `v${(process.config.variables as { arm_version?: string }).arm_version ?? '7'}`;
  return p;
}

function normVariant(arch: string, v: string | undefined): string {
  if (arch === 'arm64') return !v || v === '8' ? 'v8' : v;
  if (arch === 'arm') return v ? (v.startsWith('v') ? v : `v${v}`) : 'v7';
  if (arch === 'amd64') return !v || v === 'v1' ? '' : v;
  return v ?? '';
}

/** Picks the manifest for `want` from an index (containerd's platform matcher: exact variant first, then compatible older ones). */
export function selectPlatform(index: ImageIndex, want: Platform): Descriptor | undefined {
  const arch = want.architecture;
  const wv = normVariant(arch, want.variant);
  const ranked: Array<[number, Descriptor]> = [];
  for (const d of index.manifests ?? []) {
    const p = d.platform;
    if (!p || p.os !== want.os || p.architecture !== arch) continue;
    if (
      !(d.mediaType === undefined || d.mediaType === MediaType.ociManifest || d.mediaType === MediaType.dockerManifest)
    )
      continue;
    const v = normVariant(arch, p.variant);
    let rank: number;
    if (v === wv) rank = 0;
    else if ((arch === 'arm' || arch === 'amd64') && v < wv)
      rank = 1 + (wv.localeCompare(v) > 0 ? Number(wv.slice(1)) - Number(v.slice(1) || 0) : 9);
    else continue;
    ranked.push([rank, d]);
  }
  ranked.sort((a, b) => a[0] - b[0]);
  return ranked[0]?.[1];
}

const platformString = (p: Platform) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

/** Limits concurrent downloads; knows whether a new one would wait (for "Waiting"). */
export class DownloadLimiter {
  private active = 0;
  private readonly queue: Array<() => void> = [];
  constructor(private limit: number) {}
  setLimit(n: number): void {
    this.limit = Math.max(1, n);
    this.drain();
  }
  get busy(): boolean {
    return this.active >= this.limit;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.queue.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.drain();
    }
  }
  private drain(): void {
    while (this.active < this.limit && this.queue.length) {
      this.active++;
      this.queue.shift()!();
    }
  }
}

interface Flight {
  promise: Promise<Layer>;
  joiners: number;
  progress: FanoutProgress;
}

/**
 * Concurrent pulls of the same layer (same blob on the same parent chain)
 * share one download and registration. Each caller gets its own layer
 * reference; the flight's own reference is given back when the last caller
 * has taken theirs.
 */
export class LayerFlights {
  private readonly flights = new Map<string, Flight>();
  constructor(private readonly layers: LayerStore) {}

  async acquire(key: string, progress: ProgressSink, fn: (p: ProgressSink) => Promise<Layer>): Promise<Layer> {
    let f = this.flights.get(key);
    if (!f) {
      const fan = new FanoutProgress();
      const flight: Flight = { promise: undefined as unknown as Promise<Layer>, joiners: 0, progress: fan };
      flight.promise = fn(fan);
      this.flights.set(key, flight);
      flight.promise.then(
        () => this.flights.get(key) === flight && this.flights.delete(key),
        () => this.flights.get(key) === flight && this.flights.delete(key),
      );
      f = flight;
    }
    const flight = f;
    flight.joiners++;
    flight.progress.sinks.add(progress);
    let l: Layer;
    try {
      l = await flight.promise;
    } catch (e) {
      flight.joiners--;
      flight.progress.sinks.delete(progress);
      throw e;
    }
    const mine = this.layers.get(l.chainId);
    flight.progress.sinks.delete(progress);
    if (--flight.joiners === 0) await this.layers.release(l.chainId).catch(() => {});
    return mine;
  }
}

export const schema1Refused = (ref: string) =>
  invalidArgument(
    `[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of ${ref} to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/`,
  );

/** moby translatePullError: registry "not found"-ish codes become the messages users know. */
export function translatePullError(err: unknown, ref: Reference): unknown {
  if (!(err instanceof RegistryError)) return err;
  const name = familiarString({ domain: ref.domain, path: ref.path });
  switch (err.code) {
    case 'DENIED':
      return new BerthError(
        'not-found',
        `pull access denied for ${name}, repository does not exist or may require 'docker login': ${err.message}`,
        { cause: err },
      );
    case 'MANIFEST_UNKNOWN':
      return new BerthError('not-found', `manifest for ${familiarString(ref)} not found: ${err.message}`, {
        cause: err,
      });
    case 'NAME_UNKNOWN':
      return new BerthError('not-found', `repository ${name} not found: ${err.message}`, { cause: err });
  }
  return err;
}

interface Resolved {
  manifestDigest: Digest;
  manifest: ImageManifest;
  configRaw: Buffer;
  config: ImageConfig;
}

function parseJson<T>(b: Buffer, what: string): T {
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch (e) {
    throw invalidArgument(`invalid ${what}: ${(e as Error).message}`);
  }
}

async function resolve(
  repo: RepositoryClient,
  ref: Reference,
  platform: Platform,
  signal: AbortSignal | undefined,
): Promise<Resolved> {
  const tagOrDigest = ref.digest ?? ref.tag ?? 'latest';
  const first = await repo.getManifest(tagOrDigest, MANIFEST_ACCEPT, signal);
  const manifestDigest = sha256(first.bytes);
  if (ref.digest && manifestDigest !== ref.digest) {
    throw invalidArgument(`manifest verification failed for digest ${ref.digest}`);
  }
  const familiar = familiarString(ref);
  let doc = parseJson<{
    schemaVersion?: number;
    mediaType?: string;
    manifests?: unknown;
    layers?: unknown;
    config?: unknown;
  }>(first.bytes, 'manifest');
  let mt = doc.mediaType ?? first.mediaType;
  if (
    doc.schemaVersion === 1 ||
    mt === MediaType.dockerManifestV1Signed ||
    mt === 'application/vnd.docker.distribution.manifest.v1+json'
  )
    throw schema1Refused(familiar);
  let bytes = first.bytes;
  if (isIndexMediaType(mt) || (Array.isArray(doc.manifests) && !doc.layers)) {
    const idx = doc as unknown as ImageIndex;
    const d = selectPlatform(idx, platform);
    if (!d)
      throw new BerthError(
        'not-found',
        `no matching manifest for ${platformString(platform)} in the manifest list entries`,
      );
    if (!isDigest(d.digest)) throw invalidArgument(`invalid digest ${JSON.stringify(d.digest)} in manifest list`);
    const m = await repo.getManifest(d.digest, MANIFEST_ACCEPT, signal);
    if (sha256(m.bytes) !== d.digest) throw invalidArgument(`manifest verification failed for digest ${d.digest}`);
    bytes = m.bytes;
    doc = parseJson(m.bytes, 'manifest');
    mt = doc.mediaType ?? m.mediaType;
    if (doc.schemaVersion === 1) throw schema1Refused(familiar);
  }
  if (mt && mt !== MediaType.ociManifest && mt !== MediaType.dockerManifest && mt !== 'application/json')
    throw invalidArgument(`unsupported media type ${mt}`);
  const manifest = doc as unknown as ImageManifest;
  if (!manifest.config || !Array.isArray(manifest.layers))
    throw invalidArgument('invalid manifest: missing config or layers');
  void bytes;
  const cfgDesc = manifest.config;
  if (!isDigest(cfgDesc.digest)) throw invalidArgument(`invalid config digest ${JSON.stringify(cfgDesc.digest)}`);
  if (
    cfgDesc.mediaType &&
    cfgDesc.mediaType !== MediaType.dockerConfig &&
    cfgDesc.mediaType !== MediaType.ociConfig &&
    cfgDesc.mediaType !== 'application/octet-stream'
  )
    throw invalidArgument(`unsupported media type ${cfgDesc.mediaType}: not an image`);
  for (const l of manifest.layers) {
    if (!isDigest(l.digest)) throw invalidArgument(`invalid layer digest ${JSON.stringify(l.digest)}`);
    if (layerCompression(l.mediaType) === undefined) throw invalidArgument(`unsupported media type ${l.mediaType}`);
    if (l.urls?.length || l.mediaType === MediaType.dockerForeignLayerGzip)
      throw invalidArgument(`foreign layer ${l.digest} (URLs) is not supported`);
  }
  const configRaw = await repo.fetchBlob(cfgDesc.digest, MAX_CONFIG, signal);
  if (sha256(configRaw) !== cfgDesc.digest)
    throw invalidArgument(`image config verification failed for digest ${cfgDesc.digest}`);
  const config = parseImageConfig(configRaw);
  if ((config.os || 'linux') !== 'linux')
    throw invalidArgument(`image operating system "${config.os}" cannot be used on this platform`);
  if (config.rootfs.diff_ids.length !== manifest.layers.length)
    throw invalidArgument("layers from manifest don't match image configuration");
  return { manifestDigest, manifest, configRaw, config };
}

/** Downloads one blob into `spool`, resuming with Range after transient failures; verifies digest and size. */
async function download(
  ctx: PullContext,
  repo: RepositoryClient,
  desc: Descriptor,
  spool: Spool,
  progress: ProgressSink,
  signal: AbortSignal,
): Promise<void> {
  const id = shortDigest(desc.digest);
  const hash = createHash('sha256');
  let offset = 0;
  const report = throttled(progress, id, 'Downloading');
  const t = ctx.transport;
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await repo.getBlob(desc.digest, offset, signal);
      if (offset > 0 && !r.partial) {
        r.body.destroy();
        throw new BerthError('unavailable', `registry does not support resuming the download of ${desc.digest}`);
      }
      report(offset, desc.size, true);
      for await (const c of r.body as AsyncIterable<Buffer>) {
        if (offset + c.length > desc.size && desc.size >= 0) {
          throw invalidArgument(
            `filesystem layer verification failed for digest ${desc.digest}: more data than the ${desc.size} bytes the manifest says`,
          );
        }
        hash.update(c);
        offset += c.length;
        await spool.write(c);
        report(offset, desc.size);
      }
      break;
    } catch (e) {
      if (signal.aborted) throw e;
      const transient =
        isRetryable(e) ||
        (e as { code?: string }).code === 'UND_ERR_SOCKET' ||
        /terminated|other side closed|ECONNRESET/.test(String((e as Error).message));
      if (!transient || attempt >= t.maxAttempts || isKind(e, 'invalid-argument')) {
        throw e instanceof BerthError
          ? e
          : new BerthError('unavailable', `error pulling ${desc.digest}: ${(e as Error).message}`, { cause: e });
      }
      const delay = t.retryBaseMs * 5 * attempt;
      for (let left = Math.ceil(delay / 1000); left > 0; left--)
        progress.update(id, `Retrying in ${left} second${left > 1 ? 's' : ''}`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  progress.update(id, 'Verifying Checksum');
  const got = `sha256:${hash.digest('hex')}`;
  if (offset !== desc.size || got !== desc.digest) {
    throw invalidArgument(
      `filesystem layer verification failed for digest ${desc.digest}${offset !== desc.size ? `: got ${offset} of ${desc.size} bytes` : ''}`,
    );
  }
  progress.update(id, 'Download complete');
}

/** Downloads layer `desc` and registers it on `parent` (pipelined). Returns the layer with one reference. */
async function fetchAndRegister(
  ctx: PullContext,
  repo: RepositoryClient,
  desc: Descriptor,
  expectedDiffId: Digest,
  parentReady: Promise<Digest | undefined>,
  progress: ProgressSink,
  outer: AbortSignal | undefined,
): Promise<Layer> {
  const id = shortDigest(desc.digest);
  const ac = new AbortController();
  const onAbort = () => ac.abort(outer?.reason);
  outer?.addEventListener('abort', onAbort, { once: true });
  const spool = new Spool(ctx.tmpDir);
  let downloadDone = false;
  if (ctx.downloads.busy) progress.update(id, 'Waiting');
  const dl = ctx.downloads
    .run(async () => {
      if (ac.signal.aborted) throw ac.signal.reason ?? new Error('aborted');
      await download(ctx, repo, desc, spool, progress, ac.signal);
    })
    .then(
      () => {
        downloadDone = true;
        spool.end();
      },
      (e: Error) => {
        spool.fail(e);
        throw e;
      },
    );
  dl.catch(() => {});
  try {
    let parent: Digest | undefined;
    try {
      parent = await parentReady;
    } catch (e) {
      ac.abort(e);
      throw e;
    }
    const compressed = spool.attach();
    const head = await spool.head();
    const { kind } = chooseCompression(desc.mediaType, head);
    // "Extracting" progress counts compressed bytes consumed; it is shown once the
    // download is complete, so each layer's line moves Downloading → Extracting.
    const extracting = throttled(progress, id, 'Extracting');
    let seen = 0;
    const progressTap = new Transform({
      highWaterMark: 1 << 20,
      transform(chunk: Buffer, _e, cb) {
        seen += chunk.length;
        if (downloadDone) extracting(seen, desc.size);
        cb(null, chunk);
      },
    });
    const dec = decompressor(kind);
    let tar: Readable = progressTap;
    pipeline(compressed, progressTap, () => {});
    if (dec) {
      progressTap.on('error', (e) => dec.destroy(e));
      dec.on('error', () => {}); // the registration sees it through its own stream handling
      tar = progressTap.pipe(dec);
    }
    const reg = ctx.layers.register(tar, parent, { signal: ac.signal });
    let layer: Layer;
    try {
      [layer] = await Promise.all([reg, dl]);
    } catch (e) {
      ac.abort(e);
      // give back a layer that registered before the download failed verification
      const r = await reg.catch(() => undefined);
      if (r) await ctx.layers.release(r.chainId).catch(() => {});
      throw e;
    }
    extracting(desc.size, desc.size, true);
    if (layer.diffId !== expectedDiffId) {
      await ctx.layers.release(layer.chainId).catch(() => {});
      throw invalidArgument("layers from manifest don't match image configuration");
    }
    return layer;
  } finally {
    outer?.removeEventListener('abort', onAbort);
    await dl.catch(() => {});
    await spool.dispose();
  }
}

/** Pulls `ref` from one endpoint. */
async function pullFrom(
  ctx: PullContext,
  ep: Endpoint,
  ref: Reference,
  opts: PullOptions,
  progress: ProgressSink,
): Promise<PullResult> {
  const auth = opts.auth ?? {};
  const repo = ctx.transport.repository(ep, ref.path, auth, ['pull']);
  const tagOrDigest = ref.digest ?? ref.tag ?? 'latest';
  await ctx.transport.ping(ep, opts.signal);
  progress.update(tagOrDigest, `Pulling from ${ref.path}`);
  const r = await resolve(repo, ref, opts.platform ?? ctx.platform, opts.signal);
  const diffIds = r.config.rootfs.diff_ids;
  const chain = chainIds(diffIds);
  const layers = r.manifest.layers;
  const held: Digest[] = [];
  const release = async () => {
    for (const c of held.reverse()) await ctx.layers.release(c).catch(() => {});
    held.length = 0;
  };
  try {
    // layers already present: the longest prefix whose chain exists
    let k = -1;
    for (let i = chain.length - 1; i >= 0; i--) {
      if (ctx.layers.has(chain[i]!)) {
        k = i;
        break;
      }
    }
    if (k >= 0) {
      ctx.layers.get(chain[k]!);
      held.push(chain[k]!);
    }
    for (let i = 0; i <= k; i++) progress.update(shortDigest(layers[i]!.digest), 'Already exists');
    for (let i = k + 1; i < layers.length; i++) progress.update(shortDigest(layers[i]!.digest), 'Pulling fs layer');
    let parentReady: Promise<Digest | undefined> = Promise.resolve(k >= 0 ? chain[k] : undefined);
    const tasks: Array<Promise<Layer>> = [];
    for (let i = k + 1; i < layers.length; i++) {
      const desc = layers[i]!;
      const key = `${i > 0 ? chain[i - 1] : ''}|${desc.digest}`;
      const pr = parentReady;
      const task = ctx.flights.acquire(key, progress, (p) =>
        fetchAndRegister(ctx, repo, desc, diffIds[i]!, pr, p, opts.signal),
      );
      task.then(
        (l) => {
          held.push(l.chainId);
          progress.update(shortDigest(desc.digest), 'Pull complete');
          ctx.metadata.add(l.diffId, { Digest: desc.digest, SourceRepository: refName(ref), HMAC: '' });
        },
        () => {},
      );
      parentReady = task.then((l) => l.chainId);
      parentReady.catch(() => {}); // the next layer (if any) sees the failure; never unhandled
      tasks.push(task);
    }
    const settled = await Promise.allSettled(tasks);
    // let the bookkeeping callbacks above run
    await Promise.resolve();
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    progress.update('', `Digest: ${r.manifestDigest}`);
    // the image, then its names
    const existed = ctx.images.has(r.manifest.config.digest);
    const imageId = ctx.images.create(r.configRaw);
    let old: Digest | undefined;
    try {
      old = ctx.refs.get(ref);
    } catch {
      old = undefined;
    }
    try {
      if (ref.digest) {
        if (old !== imageId) {
          if (old) ctx.refs.delete(ref);
          ctx.refs.addDigest(ref, imageId);
        }
      } else {
        ctx.refs.addTag(ref, imageId, true);
        const dref: Reference = { domain: ref.domain, path: ref.path, digest: r.manifestDigest };
        let oldD: Digest | undefined;
        try {
          oldD = ctx.refs.get(dref);
        } catch {
          oldD = undefined;
        }
        if (oldD !== imageId) {
          if (oldD) ctx.refs.delete(dref);
          ctx.refs.addDigest(dref, imageId);
        }
      }
    } catch (e) {
      if (!existed && ctx.refs.references(imageId).length === 0) await ctx.images.delete(imageId).catch(() => {});
      throw e;
    }
    const updated = old !== imageId;
    return { imageId, manifestDigest: r.manifestDigest, reference: ref, updated };
  } finally {
    await release();
  }
}

/** Pulls with endpoint fallback (mirrors first; https then http for insecure registries). */
export async function pull(ctx: PullContext, ref: Reference, opts: PullOptions = {}): Promise<PullResult> {
  const progress = opts.progress ?? { update() {} };
  const eps = await ctx.transport.endpoints(ref.domain);
  let lastErr: unknown;
  for (const ep of eps) {
    try {
      const res = await pullFrom(ctx, ep, ref, opts, progress);
      progress.update(
        '',
        `Status: ${res.updated ? 'Downloaded newer image' : 'Image is up to date'} for ${familiarString(ref)}`,
      );
      return res;
    } catch (e) {
      lastErr = e;
      if (opts.signal?.aborted) break;
      // a mirror that fails in any way, or an endpoint we could not talk HTTP to: try the next
      if (ep.mirror || e instanceof TransportError) {
        ctx.transport.debug('pull endpoint failed, trying the next', { endpoint: ep.base, err: (e as Error).message });
        continue;
      }
      break;
    }
  }
  throw translatePullError(lastErr, ref);
}
