// The image store: `<root>/image/<driver>/imagedb` exactly as moby's image.Store
// (daemon/internal/image/{store,fs}.go) lays it out:
//   content/sha256/<hex>            the raw config bytes; image ID = their sha256
//   metadata/sha256/<hex>/parent    "sha256:<hex>" of the parent image
//   metadata/sha256/<hex>/lastUpdated  RFC3339Nano time of the last tag
//   metadata/sha256/<hex>/builtLocally  one byte 0x01
// Files are written atomically with mode 0600 in 0700 directories. Every image
// holds one layer reference on its top chain ID (taken at create and again at
// restore; references live in memory only).
import fs from 'node:fs';
import path from 'node:path';
import { BerthError, errnoCode, invalidArgument, notFound } from '../errors/index.js';
import { atomicWriteFileSync } from '../fsutil/index.js';
import { type Logger, nullLogger } from '../log/index.js';
import { chainId, chainIds, type Digest, digestHex, type ImageConfig, isDigest, sha256 } from '../oci/index.js';
import { msg } from './messages.js';
import type { LayerGetReleaser } from './ports.js';

export type ImageId = Digest;

export interface Image {
  readonly id: ImageId;
  /** The config exactly as stored. */
  readonly raw: Buffer;
  readonly config: ImageConfig;
  readonly parent?: ImageId;
}

interface ImageMeta {
  /** Top chain ID we hold a reference on (undefined for an image without layers). */
  layer?: Digest;
  /** Sum of the sizes of the image's layers. */
  size: number;
  children: Set<ImageId>;
}

const CONTENT = 'content';
const METADATA = 'metadata';
const HEX64 = /^[a-f0-9]{64}$/;

/** Parses an image config the way moby's image.NewFromJSON does (rootfs required). */
export function parseImageConfig(raw: Buffer): ImageConfig {
  let cfg: unknown;
  try {
    cfg = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw invalidArgument(`invalid image JSON: ${(e as Error).message}`, e);
  }
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw invalidArgument('invalid image JSON');
  const c = cfg as ImageConfig;
  if (!c.rootfs || typeof c.rootfs !== 'object') throw invalidArgument('invalid image JSON, no RootFS key');
  const ids = c.rootfs.diff_ids ?? [];
  if (!Array.isArray(ids)) throw invalidArgument('invalid image JSON: rootfs.diff_ids is not an array');
  for (const d of ids) {
    if (typeof d !== 'string' || !isDigest(d))
      throw invalidArgument(`invalid diff ID ${JSON.stringify(d)} in image JSON`);
  }
  c.rootfs.diff_ids = ids;
  return c;
}

export function imageOs(c: ImageConfig): string {
  return c.os || 'linux';
}

/** Go's time.Format(time.RFC3339Nano) for "now" in UTC (trailing zeros trimmed). */
export function rfc3339NanoNow(): string {
  const ns = process.hrtime.bigint() % 1_000_000n;
  const d = new Date();
  const frac = `${String(d.getUTCMilliseconds()).padStart(3, '0')}${String(ns).padStart(6, '0')}`.replace(/0+$/, '');
  return `${d.toISOString().slice(0, 19)}${frac ? `.${frac}` : ''}Z`;
}

export class ImageStore {
  private readonly images = new Map<ImageId, ImageMeta>();

  private constructor(
    readonly root: string,
    private readonly layers: LayerGetReleaser,
    private readonly log: Logger,
  ) {}

  /** Opens (creating if needed) an imagedb at `root` and restores every image. */
  static open(root: string, layers: LayerGetReleaser, log: Logger = nullLogger): ImageStore {
    fs.mkdirSync(path.join(root, CONTENT, 'sha256'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(root, METADATA, 'sha256'), { recursive: true, mode: 0o700 });
    const s = new ImageStore(root, layers, log);
    s.restore();
    return s;
  }

  private contentFile(id: ImageId): string {
    return path.join(this.root, CONTENT, 'sha256', digestHex(id));
  }
  private metadataDir(id: ImageId): string {
    return path.join(this.root, METADATA, 'sha256', digestHex(id));
  }

  private restore(): void {
    const sizes = this.layerSizes();
    for (const name of fs.readdirSync(path.join(this.root, CONTENT, 'sha256'))) {
      if (!HEX64.test(name)) continue;
      const id = `sha256:${name}` as ImageId;
      let img: Image;
      try {
        img = this.get(id);
      } catch (e) {
        this.log.error('invalid image', { digest: id, err: (e as Error).message });
        continue;
      }
      const top = chainId(img.config.rootfs.diff_ids);
      if (top) {
        if (imageOs(img.config) !== 'linux') {
          this.log.error('not restoring image with unsupported operating system', { chainID: top });
          continue;
        }
        if (!this.layers.has(top)) {
          this.log.error('not restoring image', { chainID: top, err: 'layer does not exist' });
          continue;
        }
        this.layers.get(top);
      }
      this.images.set(id, { layer: top, size: sumSizes(img.config, sizes), children: new Set() });
    }
    for (const id of this.images.keys()) {
      const parent = this.getParent(id);
      if (parent) this.images.get(parent)?.children.add(id);
    }
  }

  private layerSizes(): Map<Digest, number> {
    return new Map(this.layers.list().map((l) => [l.chainId, l.size]));
  }

  /**
   * Stores `raw` (never re-serialised) and returns its ID. Every layer of
   * rootfs.diff_ids must exist in the layer store; takes a reference on the top.
   */
  create(raw: Buffer): ImageId {
    if (raw.length === 0) throw invalidArgument('invalid empty data');
    const cfg = parseImageConfig(raw);
    const nonEmpty = (cfg.history ?? []).filter((h) => !h.empty_layer).length;
    if (nonEmpty > cfg.rootfs.diff_ids.length) throw invalidArgument(msg.tooManyHistory);
    const id = sha256(raw);
    if (this.images.has(id)) return id;
    const chain = chainIds(cfg.rootfs.diff_ids);
    if (chain.length > 0 && imageOs(cfg) !== 'linux') throw invalidArgument('operating system is not supported');
    for (const c of chain) {
      if (!this.layers.has(c)) throw invalidArgument(msg.failedToGetLayer(chain.at(-1)!, `layer ${c} does not exist`));
    }
    const top = chain.at(-1);
    const file = this.contentFile(id);
    if (!fs.existsSync(file)) atomicWriteFileSync(file, raw, { mode: 0o600 });
    if (top) this.layers.get(top);
    this.images.set(id, { layer: top, size: sumSizes(cfg, this.layerSizes()), children: new Set() });
    return id;
  }

  /** Reads and verifies an image's config (like moby, straight from disk). */
  get(id: ImageId): Image {
    let raw: Buffer;
    try {
      raw = fs.readFileSync(this.contentFile(id));
    } catch (e) {
      throw notFound(`failed to get digest ${id}: ${errnoCode(e) ?? (e as Error).message}`, e);
    }
    if (sha256(raw) !== id) throw notFound(`failed to verify: ${id}`);
    const config = parseImageConfig(raw);
    const parent = this.getParent(id);
    return { id, raw, config, ...(parent ? { parent } : {}) };
  }

  has(id: ImageId): boolean {
    return this.images.has(id);
  }

  /** Finds an image by full ID, `sha256:`-prefixed or bare hex prefix (moby's digestset). */
  search(term: string): ImageId {
    const notFoundErr = () => new BerthError('not-found', msg.noSuchImage(term));
    if (term.length === 0) throw notFoundErr();
    let hex = term;
    const colon = term.indexOf(':');
    if (colon >= 0) {
      if (term.slice(0, colon) !== 'sha256') throw notFoundErr();
      hex = term.slice(colon + 1);
    }
    if (!/^[a-f0-9]+$/.test(hex)) throw notFoundErr();
    if (hex.length === 64) {
      const id = `sha256:${hex}` as ImageId;
      if (this.images.has(id)) return id;
      throw notFoundErr();
    }
    let found: ImageId | undefined;
    for (const id of this.images.keys()) {
      if (digestHex(id).startsWith(hex)) {
        if (found) throw invalidArgument(msg.ambiguousDigest);
        found = id;
      }
    }
    if (!found) throw notFoundErr();
    return found;
  }

  /** Deletes an image and releases its layer reference; returns the chain IDs of layers that went with it. */
  async delete(id: ImageId): Promise<Digest[]> {
    const meta = this.images.get(id);
    if (!meta) throw notFound(msg.unrecognizedImage(id));
    for (const c of meta.children) fs.rmSync(path.join(this.metadataDir(c), 'parent'), { force: true });
    const parent = this.getParent(id);
    if (parent) this.images.get(parent)?.children.delete(id);
    this.images.delete(id);
    fs.rmSync(this.metadataDir(id), { recursive: true, force: true });
    fs.rmSync(this.contentFile(id), { force: true });
    if (!meta.layer) return [];
    const removed = await this.layers.release(meta.layer);
    return (removed ?? []).map((l) => l.chainId);
  }

  private setMetadata(id: ImageId, key: string, data: string | Buffer): void {
    this.get(id); // moby: fails if there is no content
    const dir = this.metadataDir(id);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    atomicWriteFileSync(path.join(dir, key), data, { mode: 0o600 });
  }

  private getMetadata(id: ImageId, key: string): Buffer | undefined {
    try {
      return fs.readFileSync(path.join(this.metadataDir(id), key));
    } catch (e) {
      if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
      throw e;
    }
  }

  setParent(id: ImageId, parent: ImageId): void {
    const pm = this.images.get(parent);
    if (!pm) throw notFound(msg.unknownParent(parent));
    const old = this.getParent(id);
    if (old) this.images.get(old)?.children.delete(id);
    pm.children.add(id);
    this.setMetadata(id, 'parent', parent);
  }

  getParent(id: ImageId): ImageId | undefined {
    const b = this.getMetadata(id, 'parent');
    if (!b) return undefined;
    const s = b.toString('utf8');
    return isDigest(s) ? (s as ImageId) : undefined;
  }

  setLastUpdated(id: ImageId): void {
    this.setMetadata(id, 'lastUpdated', rfc3339NanoNow());
  }

  getLastUpdated(id: ImageId): Date | undefined {
    const b = this.getMetadata(id, 'lastUpdated');
    if (!b || b.length === 0) return undefined;
    const d = new Date(b.toString('utf8'));
    return Number.isNaN(d.getTime()) ? undefined : d;
  }

  setBuiltLocally(id: ImageId): void {
    this.setMetadata(id, 'builtLocally', Buffer.from([1]));
  }

  isBuiltLocally(id: ImageId): boolean {
    const b = this.getMetadata(id, 'builtLocally');
    return !!b && b[0] === 1;
  }

  children(id: ImageId): ImageId[] {
    return [...(this.images.get(id)?.children ?? [])];
  }

  /** Sum of the sizes of the image's layers (what `docker images` shows). */
  size(id: ImageId): number {
    const m = this.images.get(id);
    if (!m) throw notFound(msg.unrecognizedImage(id));
    return m.size;
  }

  /** Every image ID. */
  ids(): ImageId[] {
    return [...this.images.keys()];
  }

  /** Every image (moby Map()). */
  map(): Map<ImageId, Image> {
    return this.collect(true);
  }

  /** Images without children (moby Heads()). */
  heads(): Map<ImageId, Image> {
    return this.collect(false);
  }

  private collect(all: boolean): Map<ImageId, Image> {
    const out = new Map<ImageId, Image>();
    for (const [id, m] of this.images) {
      if (!all && m.children.size > 0) continue;
      try {
        out.set(id, this.get(id));
      } catch (e) {
        this.log.error('invalid image access', { id, err: (e as Error).message });
      }
    }
    return out;
  }

  get length(): number {
    return this.images.size;
  }

  /**
   * Forgets the store's in-memory state at shutdown. Layer references are NOT
   * released: references live only in memory and are rebuilt at the next open,
   * and releasing them here would delete every layer that no container holds.
   */
  close(): void {
    this.images.clear();
  }

  /**
   * Gives back every layer reference this store took, deleting layers nothing
   * else holds. Only for a second store opened over the same layer store
   * (tests, tools), never at daemon shutdown.
   */
  async releaseAll(): Promise<void> {
    const tops = [...this.images.values()].map((m) => m.layer).filter((l): l is Digest => !!l);
    this.images.clear();
    for (const l of tops) await this.layers.release(l);
  }
}

function sumSizes(cfg: ImageConfig, sizes: Map<Digest, number>): number {
  let total = 0;
  for (const c of chainIds(cfg.rootfs.diff_ids)) total += sizes.get(c) ?? 0;
  return total;
}
