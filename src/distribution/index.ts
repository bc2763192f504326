// Pull and push for berthd (docker pull / push / login), on the registry
// client in ./transport (which has no engine dependencies).
//
// The Engine API calls:
//   const dist = new DistributionService({ layers, images, refs, metadata, ...distributionConfigFrom(cfg) });
//   POST /images/create?fromImage=x&tag=y  → await dist.pull('x:y', { auth: decodeRegistryAuth(hdr), progress, signal })
//   POST /images/{name}/push?tag=t         → await dist.push('name:t' or 'name', { auth, progress, signal })
//   POST /auth                             → await dist.login(normalizeAuthConfig(body))  → {Status, IdentityToken?}
//   SIGHUP                                 → dist.configure({...})
//
// Pull pipeline (pull.ts, stage.ts): every layer streams from the registry
// through digest verification and decompression straight into
// LayerStore.stage() (layers of 1 MiB and more on a worker thread, which also
// decompresses them), max-concurrent-downloads at once, no spool files; the
// staged layers are committed in order as each one and those below it are
// done. Concurrent pulls share staged layers by blob digest.
//
// Layer compression on push: gzip level 1 by default (compressionLevel).
// dockerd uses Go's gzip default (level 6); level 1 compresses several times
// faster for blobs ~10-20 % larger. Blob digests differ from dockerd's either
// way (different deflate implementations), so nothing is lost by choosing speed.

import { KeyedMutex } from '../concurrency/index.js';
import { invalidArgument } from '../errors/index.js';
import type { ImageStore, ReferenceStore, V2MetadataService } from '../image/index.js';
import type { LayerStore } from '../layer/index.js';
import {
  type Digest,
  isDigest,
  type Platform,
  parseDockerRef,
  parseNormalizedReference,
  type Reference,
  sha256,
} from '../oci/index.js';
import {
  DownloadLimiter,
  defaultPlatform,
  MANIFEST_ACCEPT,
  type PullContext,
  type PullOptions,
  type PullResult,
  pull,
  translatePullError,
} from './pull.js';
import { type PushContext, type PushOptions, type PushResult, push } from './push.js';
import { StageFlights } from './stage.js';
import {
  type AuthConfig,
  type RegistryHostsConfig,
  RegistryTransport,
  TransportError,
  type TransportOptions,
} from './transport/index.js';

export * from './progress.js';
export {
  defaultPlatform,
  MANIFEST_ACCEPT,
  type PullOptions,
  type PullResult,
  selectPlatform,
  translatePullError,
} from './pull.js';
export { type PushOptions, type PushResult, schema2Manifest } from './push.js';
export * from './transport/index.js';

export interface DistributionOptions extends TransportOptions {
  layers: LayerStore;
  images: ImageStore;
  refs: ReferenceStore;
  metadata: V2MetadataService;
  /** Unused since layers stream straight into the layer store (kept so callers need not change). */
  tmpDir?: string;
  /** max-concurrent-downloads (default 3). */
  maxConcurrentDownloads?: number;
  /** max-concurrent-uploads (default 5). */
  maxConcurrentUploads?: number;
  /** gzip level of pushed layers (default 1). */
  compressionLevel?: number;
  /** Platform to pick from indexes (default linux/<host arch>). */
  platform?: Platform;
  /** An existing transport to share (otherwise one is created from the options). */
  transport?: RegistryTransport;
}

/** The body of `GET /distribution/{name}/json`. */
export interface DistributionInspect {
  Descriptor: { mediaType: string; digest: Digest; size: number };
  Platforms: Platform[];
}

export interface ReloadableDistributionConfig extends RegistryHostsConfig {
  maxConcurrentDownloads?: number;
  maxConcurrentUploads?: number;
  maxDownloadAttempts?: number;
}

/** Maps daemon configuration (src/config DaemonConfig fields) to distribution options. */
export function distributionConfigFrom(cfg: {
  maxConcurrentDownloads?: number;
  maxConcurrentUploads?: number;
  maxDownloadAttempts?: number;
  registryMirrors?: string[];
  insecureRegistries?: string[];
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
  berthRegistryMirrors?: Record<string, string[]>;
}): ReloadableDistributionConfig & Pick<TransportOptions, 'proxy'> {
  const out: ReloadableDistributionConfig & Pick<TransportOptions, 'proxy'> = {};
  if (cfg.maxConcurrentDownloads !== undefined) out.maxConcurrentDownloads = cfg.maxConcurrentDownloads;
  if (cfg.maxConcurrentUploads !== undefined) out.maxConcurrentUploads = cfg.maxConcurrentUploads;
  if (cfg.maxDownloadAttempts !== undefined) out.maxDownloadAttempts = cfg.maxDownloadAttempts;
  if (cfg.registryMirrors) out.registryMirrors = cfg.registryMirrors;
  if (cfg.insecureRegistries) out.insecureRegistries = cfg.insecureRegistries;
  if (cfg.berthRegistryMirrors) out.mirrors = cfg.berthRegistryMirrors;
  if (cfg.httpProxy || cfg.httpsProxy || cfg.noProxy) {
    out.proxy = {
      ...(cfg.httpProxy ? { httpProxy: cfg.httpProxy } : {}),
      ...(cfg.httpsProxy ? { httpsProxy: cfg.httpsProxy } : {}),
      ...(cfg.noProxy ? { noProxy: cfg.noProxy } : {}),
    };
  }
  return out;
}

export class DistributionService {
  readonly transport: RegistryTransport;
  private readonly downloads: DownloadLimiter;
  private readonly uploads: DownloadLimiter;
  private readonly stages = new StageFlights();
  private readonly pullCtx: PullContext;
  private readonly pushCtx: PushContext;

  constructor(opts: DistributionOptions) {
    this.transport =
      opts.transport ??
      new RegistryTransport({ ...opts, ...(opts.maxAttempts === undefined ? {} : { maxAttempts: opts.maxAttempts }) });
    this.downloads = new DownloadLimiter(opts.maxConcurrentDownloads ?? 3);
    this.uploads = new DownloadLimiter(opts.maxConcurrentUploads ?? 5);
    this.pullCtx = {
      transport: this.transport,
      layers: opts.layers,
      images: opts.images,
      refs: opts.refs,
      metadata: opts.metadata,
      downloads: this.downloads,
      stages: this.stages,
      commits: new KeyedMutex(),
      platform: opts.platform ?? defaultPlatform(),
    };
    this.pushCtx = {
      transport: this.transport,
      layers: opts.layers,
      images: opts.images,
      refs: opts.refs,
      metadata: opts.metadata,
      uploads: this.uploads,
      compressionLevel: opts.compressionLevel ?? 1,
    };
  }

  /** SIGHUP: new limits, attempts, mirrors, insecure registries (running transfers keep going). */
  configure(cfg: ReloadableDistributionConfig): void {
    if (cfg.maxConcurrentDownloads !== undefined) this.downloads.setLimit(cfg.maxConcurrentDownloads);
    if (cfg.maxConcurrentUploads !== undefined) this.uploads.setLimit(cfg.maxConcurrentUploads);
    this.transport.configure({
      ...cfg,
      ...(cfg.maxDownloadAttempts !== undefined ? { maxAttempts: cfg.maxDownloadAttempts } : {}),
    });
  }

  /** `docker pull name[:tag|@digest]` (name normalised as the CLI does; default tag latest). */
  pull(ref: string | Reference, opts: PullOptions = {}): Promise<PullResult> {
    const r = typeof ref === 'string' ? parseDockerRef(ref) : ref;
    return pull(this.pullCtx, r, opts);
  }

  /** `docker push name[:tag]` (no tag: every tag of the repository). */
  push(ref: string | Reference, opts: PushOptions = {}): Promise<PushResult[]> {
    const r = typeof ref === 'string' ? parseNormalizedReference(ref) : ref;
    return push(this.pushCtx, r, opts);
  }

  /**
   * `GET /distribution/{name}/json`: the manifest descriptor a name resolves to
   * and the platforms it offers (from the index, or from the image config for a
   * single-platform manifest), without pulling anything.
   */
  async inspect(
    ref: string | Reference,
    opts: { auth?: AuthConfig; signal?: AbortSignal } = {},
  ): Promise<DistributionInspect> {
    const r = typeof ref === 'string' ? parseDockerRef(ref) : ref;
    let lastErr: unknown;
    for (const ep of await this.transport.endpoints(r.domain)) {
      try {
        await this.transport.ping(ep, opts.signal);
        const repo = this.transport.repository(ep, r.path, opts.auth ?? {}, ['pull']);
        const m = await repo.getManifest(r.digest ?? r.tag ?? 'latest', MANIFEST_ACCEPT, opts.signal);
        const digest = sha256(m.bytes);
        if (r.digest && r.digest !== digest)
          throw invalidArgument(`manifest digest mismatch: ${r.digest} != ${digest}`);
        const body = JSON.parse(m.bytes.toString('utf8')) as {
          manifests?: { platform?: Platform }[];
          config?: { digest: string };
        };
        let platforms: Platform[] = [];
        if (Array.isArray(body.manifests)) {
          platforms = body.manifests.flatMap((d) => (d.platform ? [d.platform] : []));
        } else if (body.config && isDigest(body.config.digest)) {
          const cfg = JSON.parse(
            (await repo.fetchBlob(body.config.digest, 8 << 20, opts.signal)).toString('utf8'),
          ) as Platform;
          const p: Platform = { architecture: cfg.architecture, os: cfg.os };
          if (cfg['os.version']) p['os.version'] = cfg['os.version'];
          if (cfg.variant) p.variant = cfg.variant;
          platforms = [p];
        }
        return { Descriptor: { mediaType: m.mediaType, digest, size: m.bytes.length }, Platforms: platforms };
      } catch (e) {
        lastErr = e;
        if (opts.signal?.aborted) break;
        // as pull: a mirror that fails, or an endpoint we could not talk HTTP to (https → http fallback): next
        if (ep.mirror || e instanceof TransportError) continue;
        break;
      }
    }
    throw translatePullError(lastErr, r);
  }

  /** `docker login` (POST /auth). */
  login(auth: AuthConfig, signal?: AbortSignal) {
    return this.transport.checkLogin(auth, signal);
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
