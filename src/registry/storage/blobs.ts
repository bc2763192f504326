// Content-addressed blobs (`blobs/<alg>/<xx>/<hex>/data`) and the per-repository
// link files that make a blob visible in a repository (`_layers/…/link`).
import type { Readable } from 'node:stream';
import { type Digest, isDigest, sha256 } from '../../oci/index.js';
import { isPathNotFound, type StorageDriver } from './driver.js';
import { LinkCache } from './linkcache.js';
import { linkContent, pathFor } from './paths.js';

export interface BlobDescriptor {
  digest: Digest;
  size: number;
}

export class BlobStore {
  /** Link files and blob existence, validated by one stat per lookup (linkcache.ts); none without driver support. */
  readonly cache: LinkCache | undefined;
  constructor(readonly driver: StorageDriver) {
    this.cache = driver.versioned ? new LinkCache(driver.versioned) : undefined;
  }

  /** The blob's size, or undefined when the registry does not have it. */
  async stat(digest: Digest): Promise<BlobDescriptor | undefined> {
    const known = this.cache?.blobSize(digest);
    if (known === null) return undefined;
    if (known !== undefined) return { digest, size: known };
    const p = pathFor({ kind: 'blobData', digest });
    try {
      const fi = await this.driver.stat(p);
      if (fi.isDir) return undefined;
      this.cache?.rememberBlob(digest, p);
      return { digest, size: fi.size };
    } catch (e) {
      if (isPathNotFound(e)) return undefined;
      throw e;
    }
  }

  async get(digest: Digest): Promise<Buffer | undefined> {
    try {
      return await this.driver.getContent(pathFor({ kind: 'blobData', digest }));
    } catch (e) {
      if (isPathNotFound(e)) return undefined;
      throw e;
    }
  }

  open(digest: Digest, offset = 0, length?: number): Promise<Readable> {
    return this.driver.reader(pathFor({ kind: 'blobData', digest }), offset, length);
  }

  /**
   * Writes `length` bytes of a blob from `offset` to `out` (with backpressure), through
   * the driver's copyTo when it has one, else a stream.
   */
  async copyTo(digest: Digest, offset: number, length: number, out: NodeJS.WritableStream): Promise<void> {
    const p = pathFor({ kind: 'blobData', digest });
    if (this.driver.copyTo) return this.driver.copyTo(p, offset, length, out);
    const stream = await this.driver.reader(p, offset, length);
    await new Promise<void>((resolve, reject) => {
      stream.on('error', reject);
      out.on('close', () => {
        stream.destroy();
        resolve();
      });
      stream.on('end', () => resolve());
      stream.pipe(out, { end: false });
    });
  }

  /** Stores small content (manifests) by its sha256; existing content is left as is. */
  async put(data: Buffer, digest: Digest = sha256(data)): Promise<BlobDescriptor> {
    const have = await this.stat(digest);
    if (!have || have.size !== data.length) {
      this.cache?.forgetBlob(digest);
      await this.driver.putContent(pathFor({ kind: 'blobData', digest }), data);
    }
    return { digest, size: data.length };
  }

  /** Reads a link file; undefined when it is missing or does not hold a digest. */
  async readLink(linkPath: string): Promise<Digest | undefined> {
    if (this.cache) return this.cache.read(linkPath);
    let raw: Buffer;
    try {
      raw = await this.driver.getContent(linkPath);
    } catch (e) {
      if (isPathNotFound(e)) return undefined;
      throw e;
    }
    const s = raw.toString('utf8').trim();
    return isDigest(s) ? (s as Digest) : undefined;
  }

  /**
   * Writes a link file. Not synced by default (distribution never syncs links);
   * `durable` syncs it and its directories before returning (a tag's current link).
   */
  async writeLink(linkPath: string, digest: Digest, durable = false): Promise<void> {
    this.cache?.forget(linkPath);
    try {
      await this.driver.putContent(linkPath, linkContent(digest), { sync: durable });
    } finally {
      this.cache?.forget(linkPath);
    }
  }

  /** A blob as a repository sees it: linked in `_layers` and present in the blob store. */
  async statInRepo(name: string, digest: Digest): Promise<BlobDescriptor | undefined> {
    const target = await this.readLink(pathFor({ kind: 'layerLink', name, digest }));
    if (!target) return undefined;
    const d = await this.stat(target);
    return d ? { digest, size: d.size } : undefined;
  }

  linkInRepo(name: string, digest: Digest): Promise<void> {
    return this.writeLink(pathFor({ kind: 'layerLink', name, digest }), digest);
  }

  /** Removes the repository's link (the data stays until garbage collection). False when not linked. */
  async unlinkInRepo(name: string, digest: Digest): Promise<boolean> {
    const p = pathFor({ kind: 'layerLink', name, digest });
    try {
      await this.driver.delete(p);
      return true;
    } catch (e) {
      if (isPathNotFound(e)) return false;
      throw e;
    } finally {
      this.cache?.forget(p);
    }
  }

  /** Drops every cached entry (after a garbage collection in this process). */
  invalidate(): void {
    this.cache?.clear();
  }
}
