// Shared plumbing for the pull/push tests: an engine (layer store, image
// store, references, v2 metadata, distribution service) on a temp data-root,
// images built in-process and pushed to a registry with plain HTTP, and
// helpers to snapshot the stores.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { type DistributionOptions, DistributionService, RecordingProgress } from '../../src/distribution/index.js';
import { schema2Manifest } from '../../src/distribution/push.js';
import { ImageService, ImageStore, imagePaths, ReferenceStore, V2MetadataService } from '../../src/image/index.js';
import { LayerStore } from '../../src/layer/index.js';
import { makeTar } from '../../src/layer/tar-fixture.js';
import { type Digest, MediaType, sha256 } from '../../src/oci/index.js';
import { pushBlob, pushManifest, startDistribution, tempDir } from '../registry/helpers.js';

export interface Engine {
  root: string;
  layers: LayerStore;
  images: ImageStore;
  refs: ReferenceStore;
  metadata: V2MetadataService;
  service: ImageService;
  dist: DistributionService;
  close(): Promise<void>;
}

export async function openEngine(opts: Partial<DistributionOptions> = {}): Promise<Engine> {
  const root = tempDir('berth-pull-');
  const layers = await LayerStore.open(root);
  const p = imagePaths(root);
  const images = ImageStore.open(p.imagedb, layers);
  const refs = ReferenceStore.open(p.repositories);
  const metadata = new V2MetadataService(p.distribution);
  const service = new ImageService(images, refs);
  const dist = new DistributionService({
    layers,
    images,
    refs,
    metadata,
    tmpDir: p.tmp,
    retryBaseMs: 10,
    maxAttempts: 3,
    ...opts,
  });
  return {
    root,
    layers,
    images,
    refs,
    metadata,
    service,
    dist,
    close: async () => {
      await dist.close();
      await images.close();
      await layers.close();
    },
  };
}

/** What must not change when a pull fails. */
export function snapshot(e: Engine) {
  const p = imagePaths(e.root);
  return {
    layers: e.layers
      .list()
      .map((l) => l.chainId)
      .sort(),
    images: e.images.ids().sort(),
    repositories: fs.existsSync(p.repositories) ? fs.readFileSync(p.repositories, 'utf8') : '',
    overlay: fs
      .readdirSync(path.join(e.root, 'overlay2'))
      .filter((n) => n !== 'l')
      .sort(),
    tmp: fs.existsSync(p.tmp) ? fs.readdirSync(p.tmp) : [],
  };
}

export type Comp = 'gzip' | 'zstd' | 'none';

export function compress(tar: Buffer, c: Comp): Buffer {
  if (c === 'gzip') return gzipSync(tar);
  if (c === 'none') return tar;
  const r = spawnSync('zstd', ['-q', '-c', '-3'], { input: tar, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr}`);
  return r.stdout;
}

const OCI_TYPES: Record<Comp, string> = {
  gzip: MediaType.ociLayerGzip,
  zstd: MediaType.ociLayerZstd,
  none: MediaType.ociLayer,
};

export interface BuiltImage {
  config: Buffer;
  configDigest: Digest;
  diffIds: Digest[];
  blobs: Buffer[];
  layerDescs: Array<{ mediaType: string; size: number; digest: Digest }>;
  manifest: Buffer;
  manifestDigest: Digest;
}

let seq = 0;
/** A little image: one file per layer (content unique per call unless `seed` given). */
export function buildImage(
  layers: Array<{ files: Record<string, string | Buffer>; comp?: Comp }>,
  opts: { format?: 'oci' | 'docker'; arch?: string; seed?: string } = {},
): BuiltImage {
  const seed = opts.seed ?? `${process.pid}-${Date.now()}-${seq++}`;
  const tars = layers.map((l) => makeTar(Object.entries(l.files).map(([name, data]) => ({ name, data }))));
  const diffIds = tars.map((t) => sha256(t));
  const blobs = tars.map((t, i) => compress(t, layers[i]!.comp ?? 'gzip'));
  const docker = opts.format === 'docker';
  const layerDescs = blobs.map((b, i) => ({
    mediaType: docker ? MediaType.dockerLayerGzip : OCI_TYPES[layers[i]!.comp ?? 'gzip'],
    size: b.length,
    digest: sha256(b),
  }));
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.arch ?? 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'], Labels: { seed } },
      created: '2024-01-01T00:00:00Z',
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'test' })),
    }),
  );
  const configDigest = sha256(config);
  let manifest: Buffer;
  if (docker) {
    manifest = schema2Manifest(
      { mediaType: MediaType.dockerConfig, size: config.length, digest: configDigest },
      layerDescs,
    );
  } else {
    manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, size: config.length, digest: configDigest },
        layers: layerDescs,
      }),
    );
  }
  return { config, configDigest, diffIds, blobs, layerDescs, manifest, manifestDigest: sha256(manifest) };
}

export async function uploadImage(
  base: string,
  repo: string,
  tag: string,
  img: BuiltImage,
  format: 'oci' | 'docker' = 'oci',
) {
  for (const b of [...img.blobs, img.config]) {
    const r = await pushBlob(base, repo, b);
    if (r.status !== 201) throw new Error(`blob push ${r.status} ${r.body}`);
  }
  const r = await pushManifest(
    base,
    repo,
    tag,
    img.manifest,
    format === 'docker' ? MediaType.dockerManifest : MediaType.ociManifest,
  );
  if (r.status !== 201) throw new Error(`manifest push ${r.status} ${r.body}`);
}

export async function uploadIndex(
  base: string,
  repo: string,
  tag: string,
  entries: Array<{ img: BuiltImage; platform: Record<string, string> }>,
) {
  for (const e of entries) await uploadImage(base, repo, e.img.manifestDigest, e.img);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: entries.map((e) => ({
        mediaType: MediaType.ociManifest,
        size: e.img.manifest.length,
        digest: e.img.manifestDigest,
        platform: e.platform,
      })),
    }),
  );
  const r = await pushManifest(base, repo, tag, index, MediaType.ociIndex);
  if (r.status !== 201) throw new Error(`index push ${r.status} ${r.body}`);
  return { index, digest: sha256(index) };
}

/** The data file of a blob in a distribution-layout storage root. */
export function blobDataPath(root: string, digest: Digest): string {
  const hex = digest.slice(7);
  return path.join(root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}

export const progress = () => new RecordingProgress();

/** docker-registry 2.8 with htpasswd auth (the given `user:bcrypt` line), through the registry tests' starter. */
export async function startDistributionWithHtpasswd(
  htpasswdLine: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const dir = tempDir('dist-auth-cfg-');
  fs.writeFileSync(path.join(dir, 'htpasswd'), `${htpasswdLine}\n`);
  return startDistribution({
    extraYaml: ['auth:', '  htpasswd:', '    realm: basic-realm', `    path: ${path.join(dir, 'htpasswd')}`],
  });
}

export const hostOf = (url: string) => new URL(url).host;
