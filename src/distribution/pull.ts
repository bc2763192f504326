// docker pull (moby distribution/pull_v2.go + xfer/download.go, redone):
// resolve the reference to a manifest (an index resolved to the daemon's
// platform), fetch and verify the config, then download the layers
// (max-concurrent-downloads at once, deduplicated across concurrent pulls)
// and register them: every layer streams from the registry through digest
// verification and decompression straight into LayerStore.stage() (see
// stage.ts), and the staged layers are committed in order as each one and
// the layers below it are done. On any failure every reference this pull took
// is given back and every staged layer nobody committed is discarded, so the
// stores are as they were.
import type { KeyedMutex } from '../concurrency/index.js';
import { Semaphore } from '../concurrency/index.js';
import { BerthError, invalidArgument } from '../errors/index.js';
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
import type { ProgressSink } from './progress.js';
import { shortDigest } from './progress.js';
import { prewarmExtraction, type StageFlights, type StageTicket, stageLayer } from './stage.js';
import {
  type AuthConfig,
  type Endpoint,
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
  downloads: Semaphore;
  stages: StageFlights;
  /** Serialises commits of one chain ID across pulls. */
  commits: KeyedMutex;
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

/** Limits concurrent transfers; `busy` tells whether a new one would wait (for "Waiting"). */
export { Semaphore as DownloadLimiter };

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

const layersMismatch = () => invalidArgument("layers from manifest don't match image configuration");

/**
 * Layers k+1… of the image: every one is staged at once (the download
 * limiter lets max-concurrent-downloads run; each streams into its own
 * extraction), and committed in order as soon as it and the layers below it
 * are there. Every committed layer's reference is pushed on `held`. The first
 * failure of any layer fails the pull at once; downloads nobody else needs
 * are cancelled and staged layers nobody committed are discarded.
 */
async function stageAndCommit(
  ctx: PullContext,
  repo: RepositoryClient,
  ref: Reference,
  r: Resolved,
  k: number,
  held: Digest[],
  progress: ProgressSink,
  signal: AbortSignal | undefined,
): Promise<void> {
  const diffIds = r.config.rootfs.diff_ids;
  const chain = chainIds(diffIds);
  const layers = r.manifest.layers;
  let failure: { e: unknown } | undefined;
  let rejectFailed!: (e: unknown) => void;
  const failed = new Promise<never>((_, rej) => {
    rejectFailed = rej;
  });
  failed.catch(() => {});
  const fail = (e: unknown) => {
    if (failure) return;
    failure = { e };
    rejectFailed(e);
  };
  const onAbort = () => fail(signal!.reason ?? new BerthError('cancelled', 'pull cancelled'));
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const join = (i: number): StageTicket => {
    const desc = layers[i]!;
    const t = ctx.stages.join(desc.digest, progress, (p, s) => stageLayer(ctx, repo, desc, p, s));
    t.staged.then(
      (s) => t.active && s.diffId !== diffIds[i] && fail(layersMismatch()),
      (e) => t.active && fail(e),
    );
    return t;
  };
  const tickets: StageTicket[] = [];
  try {
    for (let i = k + 1; i < layers.length; i++) tickets[i] = join(i);
    let parent = k >= 0 ? chain[k] : undefined;
    for (let i = k + 1; i < layers.length; i++) {
      const desc = layers[i]!;
      const chainId = chain[i]!;
      let layer: Layer | undefined;
      for (let attempt = 1; !layer; attempt++) {
        const t = tickets[i]!;
        // another pull may have committed it meanwhile: no need to wait for our copy
        const staged = ctx.layers.has(chainId) ? undefined : await Promise.race([t.staged, failed]);
        if (failure) throw failure.e;
        if (staged && staged.diffId !== diffIds[i]) throw layersMismatch();
        const p = parent;
        layer = await ctx.commits.run(chainId, async () => {
          if (ctx.layers.has(chainId)) return ctx.layers.get(chainId);
          if (!staged || !t.claim()) return undefined;
          return ctx.layers.commitStaged(staged, p);
        });
        await t.leave(); // an unclaimed copy nobody else wants is cancelled or discarded
        if (layer) break;
        // our staged copy went to another chain (the same blob on another parent): stage our own
        if (attempt >= 3) throw new BerthError('unavailable', `could not register layer ${desc.digest}`);
        tickets[i] = join(i);
      }
      held.push(layer.chainId);
      progress.update(shortDigest(desc.digest), 'Pull complete');
      ctx.metadata.add(layer.diffId, { Digest: desc.digest, SourceRepository: refName(ref), HMAC: '' });
      parent = layer.chainId;
      if (failure) throw failure.e;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await Promise.all(tickets.map((t) => t?.leave()));
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
  prewarmExtraction(ctx.downloads.limit);
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
    await stageAndCommit(ctx, repo, ref, r, k, held, progress, opts.signal);
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
