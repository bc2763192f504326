// Manifests, tags and referrers of a repository. Manifest bytes live in the
// blob store; `_manifests/revisions/<alg>/<hex>/link` makes them part of a
// repository, `_manifests/tags/<tag>/{current,index/<alg>/<hex>}/link` names
// them. Bytes are stored exactly as received; digests are over those bytes.
import { createHash } from 'node:crypto';
import { type Digest, isDigest, MediaType } from '../../oci/index.js';
import { regError } from '../errors.js';
import type { BlobStore } from './blobs.js';
import { isPathNotFound, type StorageDriver } from './driver.js';
import type { WriteGate } from './gate.js';
import { digestFromComponents, pathFor } from './paths.js';

export const MANIFEST_TYPES = new Set<string>([
  MediaType.ociManifest,
  MediaType.ociIndex,
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
]);

const NON_DISTRIBUTABLE = new Set<string>([
  MediaType.ociLayerNondistributable,
  MediaType.ociLayerNondistributableGzip,
  MediaType.ociLayerNondistributableZstd,
  MediaType.dockerForeignLayerGzip,
]);

export interface DescriptorLike {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** What the registry needs to know about a stored manifest. */
export interface ManifestInfo {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  subject?: Digest;
  /** Blobs (config, layers) a manifest needs in its repository. */
  blobs: DescriptorLike[];
  /** Manifests an index needs in its repository. */
  children: DescriptorLike[];
}

function asDescriptor(v: unknown, where: string): DescriptorLike {
  if (typeof v !== 'object' || v === null) throw regError('MANIFEST_INVALID', `${where}: not a descriptor`);
  const d = v as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType === '')
    throw regError('MANIFEST_INVALID', `${where}: mediaType missing`);
  if (typeof d.digest !== 'string' || !isDigest(d.digest))
    throw regError('MANIFEST_INVALID', `${where}: invalid digest ${JSON.stringify(d.digest)}`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0)
    throw regError('MANIFEST_INVALID', `${where}: invalid size`);
  if (d.urls !== undefined && (!Array.isArray(d.urls) || d.urls.some((u) => typeof u !== 'string')))
    throw regError('MANIFEST_INVALID', `${where}: invalid urls`);
  return d as unknown as DescriptorLike;
}

/**
 * Parses and checks a manifest body. `contentType` is the request's
 * Content-Type (may be empty). Throws MANIFEST_INVALID with a clear detail.
 */
export function parseManifest(body: Buffer, contentType: string, digest: Digest): ManifestInfo {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw regError('MANIFEST_INVALID', `not JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw regError('MANIFEST_INVALID', 'manifest is not a JSON object');
  const m = doc as Record<string, unknown>;
  if (m.schemaVersion !== 2) {
    throw regError('MANIFEST_INVALID', `unsupported schemaVersion ${JSON.stringify(m.schemaVersion)} (only 2)`);
  }
  const ct = contentType.split(';')[0]!.trim().toLowerCase();
  const declared = typeof m.mediaType === 'string' ? m.mediaType : undefined;
  if (m.mediaType !== undefined && typeof m.mediaType !== 'string')
    throw regError('MANIFEST_INVALID', 'mediaType must be a string');
  if (declared && MANIFEST_TYPES.has(ct) && ct !== declared) {
    throw regError('MANIFEST_INVALID', `Content-Type ${ct} does not match the manifest's mediaType ${declared}`);
  }
  let mediaType = declared ?? (MANIFEST_TYPES.has(ct) ? ct : undefined);
  if (!mediaType) mediaType = Array.isArray(m.manifests) ? MediaType.ociIndex : MediaType.ociManifest;
  if (!MANIFEST_TYPES.has(mediaType)) throw regError('MANIFEST_INVALID', `unsupported manifest mediaType ${mediaType}`);
  const isIndex = mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
  const info: ManifestInfo = { mediaType, digest, size: body.length, blobs: [], children: [] };
  if (isIndex) {
    if (!Array.isArray(m.manifests)) throw regError('MANIFEST_INVALID', 'index without a manifests array');
    info.children = m.manifests.map((d, i) => asDescriptor(d, `manifests[${i}]`));
  } else {
    if (m.config === undefined) throw regError('MANIFEST_INVALID', 'manifest without config');
    const config = asDescriptor(m.config, 'config');
    if (!Array.isArray(m.layers)) throw regError('MANIFEST_INVALID', 'manifest without a layers array');
    const layers = m.layers.map((d, i) => asDescriptor(d, `layers[${i}]`));
    info.blobs = [config, ...layers];
    if (typeof m.artifactType !== 'string') info.artifactType = config.mediaType;
  }
  if (m.artifactType !== undefined) {
    if (typeof m.artifactType !== 'string') throw regError('MANIFEST_INVALID', 'artifactType must be a string');
    info.artifactType = m.artifactType;
  }
  if (m.annotations !== undefined) {
    if (typeof m.annotations !== 'object' || m.annotations === null || Array.isArray(m.annotations))
      throw regError('MANIFEST_INVALID', 'annotations must be an object');
    info.annotations = m.annotations as Record<string, string>;
  }
  if (m.subject !== undefined) info.subject = asDescriptor(m.subject, 'subject').digest;
  return info;
}

export interface PutResult {
  digest: Digest;
  subject?: Digest;
}

const INFO_CACHE_MAX = 20000;
const BYTES_CACHE_MAX = 64 * 1024 * 1024;

export class ManifestStore {
  /** Parsed facts by digest: content-addressed, so never stale. */
  private readonly infos = new Map<Digest, ManifestInfo | null>();
  /** Small manifest bytes by digest (LRU), for fast GETs. */
  private readonly bytes = new Map<Digest, Buffer>();
  private bytesTotal = 0;

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
    private readonly gate?: WriteGate,
  ) {}

  async resolveTag(name: string, tag: string): Promise<Digest | undefined> {
    return this.blobs.readLink(pathFor({ kind: 'tagCurrentLink', name, tag }));
  }

  async exists(name: string, digest: Digest): Promise<boolean> {
    return (await this.blobs.readLink(pathFor({ kind: 'revisionLink', name, digest }))) !== undefined;
  }

  /** The manifest bytes if the repository has that revision. */
  async get(name: string, digest: Digest): Promise<Buffer | undefined> {
    if (!(await this.exists(name, digest))) return undefined;
    const cached = this.bytes.get(digest);
    if (cached) return cached;
    const data = await this.blobs.get(digest);
    if (data) this.cacheBytes(digest, data);
    return data;
  }

  private cacheBytes(digest: Digest, data: Buffer): void {
    if (data.length > 4 * 1024 * 1024) return;
    this.bytes.set(digest, data);
    this.bytesTotal += data.length;
    while (this.bytesTotal > BYTES_CACHE_MAX) {
      const [k, v] = this.bytes.entries().next().value as [Digest, Buffer];
      this.bytes.delete(k);
      this.bytesTotal -= v.length;
    }
  }

  async info(digest: Digest, data?: Buffer): Promise<ManifestInfo | null> {
    if (this.infos.has(digest)) return this.infos.get(digest) ?? null;
    const body = data ?? (await this.blobs.get(digest));
    let info: ManifestInfo | null = null;
    if (body) {
      try {
        info = parseManifest(body, '', digest);
      } catch {
        info = null;
      }
    }
    if (this.infos.size >= INFO_CACHE_MAX) this.infos.delete(this.infos.keys().next().value as Digest);
    this.infos.set(digest, info);
    return info;
  }

  /**
   * Validates and stores a manifest, then tags it. `reference` is a tag or the
   * digest the client claims; a digest that does not match the bytes is refused
   * before anything is written.
   */
  async put(
    name: string,
    reference: { tag?: string; digest?: Digest },
    body: Buffer,
    contentType: string,
    opts: { verifyReferences?: boolean } = {},
  ): Promise<PutResult> {
    const alg = reference.digest ? reference.digest.slice(0, reference.digest.indexOf(':')) : 'sha256';
    const computed = `${alg}:${createHash(alg).update(body).digest('hex')}` as Digest;
    if (reference.digest && computed !== reference.digest) {
      throw regError(
        'DIGEST_INVALID',
        { expected: reference.digest, computed },
        { message: 'manifest digest did not match the content' },
      );
    }
    const canonical =
      alg === 'sha256' ? computed : (`sha256:${createHash('sha256').update(body).digest('hex')}` as Digest);
    const info = parseManifest(body, contentType, canonical);
    const store = () => this.storeVerified(name, reference, body, canonical, info, opts.verifyReferences ?? true);
    if (!this.gate) return store();
    return this.gate.write(
      () => [canonical, ...info.blobs.map((b) => b.digest), ...info.children.map((c) => c.digest)],
      store,
    );
  }

  private async storeVerified(
    name: string,
    reference: { tag?: string; digest?: Digest },
    body: Buffer,
    canonical: Digest,
    info: ManifestInfo,
    verifyReferences: boolean,
  ): Promise<PutResult> {
    // A pull-through cache stores manifests before their blobs (fetched on demand).
    // Reference checks run concurrently (each is a couple of small file reads).
    const blobs = (verifyReferences ? info.blobs : []).filter(
      (b) => !(b.urls?.length && NON_DISTRIBUTABLE.has(b.mediaType)),
    );
    const [blobOk, childOk] = await Promise.all([
      Promise.all(blobs.map((b) => this.blobs.statInRepo(name, b.digest))),
      Promise.all((verifyReferences ? info.children : []).map((c) => this.exists(name, c.digest))),
    ]);
    const missingBlob = blobs.find((_, i) => !blobOk[i]);
    if (missingBlob) {
      throw regError(
        'MANIFEST_BLOB_UNKNOWN',
        { digest: missingBlob.digest },
        { message: `blob unknown to registry: ${missingBlob.digest}` },
      );
    }
    const missingChild = info.children.find((_, i) => verifyReferences && !childOk[i]);
    if (missingChild) {
      throw regError(
        'MANIFEST_BLOB_UNKNOWN',
        { digest: missingChild.digest },
        { message: `manifest unknown to registry: ${missingChild.digest}` },
      );
    }
    // Content first, then the revision link, then the tag's current link (with its index entry):
    // a reader never follows a link to missing bytes. The bytes and the revision link are
    // content-addressed, so what already holds the right content is not written again. The
    // bytes, a new revision link and the tag's current link are durable before the 201 (the
    // tag's index entry is history distribution keeps; it is written but not synced).
    const tag = reference.tag;
    const revPath = pathFor({ kind: 'revisionLink', name, digest: canonical });
    const curPath = tag === undefined ? undefined : pathFor({ kind: 'tagCurrentLink', name, tag });
    const idxPath = tag === undefined ? undefined : pathFor({ kind: 'tagIndexLink', name, tag, digest: canonical });
    const [, rev, cur, idx] = await Promise.all([
      this.blobs.put(body, canonical),
      this.blobs.readLink(revPath),
      curPath && this.blobs.readLink(curPath),
      idxPath && this.blobs.readLink(idxPath),
    ]);
    if (rev !== canonical) await this.blobs.writeLink(revPath, canonical, true);
    await Promise.all([
      idxPath && idx !== canonical ? this.blobs.writeLink(idxPath, canonical) : undefined,
      curPath && cur !== canonical ? this.blobs.writeLink(curPath, canonical, true) : undefined,
    ]);
    this.infos.set(canonical, info);
    this.cacheBytes(canonical, body);
    return { digest: canonical, ...(info.subject ? { subject: info.subject } : {}) };
  }

  /** Deletes a revision and every tag pointing at it. False when unknown. */
  async delete(name: string, digest: Digest): Promise<boolean> {
    if (!(await this.exists(name, digest))) return false;
    const rev = pathFor({ kind: 'revisionLink', name, digest });
    try {
      await this.driver.delete(rev);
    } finally {
      this.blobs.cache?.forget(rev);
    }
    for (const tag of (await this.tags(name)) ?? []) {
      if ((await this.resolveTag(name, tag)) === digest) await this.untag(name, tag);
    }
    return true;
  }

  async untag(name: string, tag: string): Promise<boolean> {
    const dir = pathFor({ kind: 'tagDir', name, tag });
    try {
      await this.driver.delete(dir);
      return true;
    } catch (e) {
      if (isPathNotFound(e)) return false;
      throw e;
    } finally {
      this.blobs.cache?.forgetUnder(dir);
    }
  }

  /** All tags, sorted; undefined when the repository does not exist. */
  async tags(name: string): Promise<string[] | undefined> {
    try {
      const entries = await this.driver.list(pathFor({ kind: 'tagsRoot', name }));
      return entries.map((p) => p.slice(p.lastIndexOf('/') + 1)).sort();
    } catch (e) {
      if (!isPathNotFound(e)) throw e;
    }
    try {
      await this.driver.stat(pathFor({ kind: 'manifestsRoot', name }));
      return [];
    } catch (e) {
      if (isPathNotFound(e)) return undefined;
      throw e;
    }
  }

  /** Every manifest revision linked in the repository. */
  async revisions(name: string): Promise<Digest[]> {
    const out: Digest[] = [];
    let algs: string[];
    try {
      algs = await this.driver.list(pathFor({ kind: 'revisionsRoot', name }));
    } catch (e) {
      if (isPathNotFound(e)) return out;
      throw e;
    }
    for (const a of algs) {
      let hexes: string[];
      try {
        hexes = await this.driver.list(a);
      } catch (e) {
        if (isPathNotFound(e)) continue;
        throw e;
      }
      const alg = a.slice(a.lastIndexOf('/') + 1);
      for (const h of hexes) {
        const d = digestFromComponents(alg, h.slice(h.lastIndexOf('/') + 1));
        if (d && (await this.exists(name, d))) out.push(d);
      }
    }
    return out;
  }

  /** Descriptors of the manifests whose subject is `subject`, optionally filtered by artifactType. */
  async referrers(name: string, subject: Digest, artifactType?: string): Promise<DescriptorLike[]> {
    const out: DescriptorLike[] = [];
    for (const d of await this.revisions(name)) {
      const info = await this.info(d);
      if (!info || info.subject !== subject) continue;
      if (artifactType !== undefined && info.artifactType !== artifactType) continue;
      out.push({
        mediaType: info.mediaType,
        digest: d,
        size: info.size,
        ...(info.artifactType ? { artifactType: info.artifactType } : {}),
        ...(info.annotations ? { annotations: info.annotations } : {}),
      });
    }
    return out;
  }
}
