// Content-addressed blobs (`blobs/<alg>/<xx>/<hex>/data`) and the per-repository
// link files that make a blob visible in a repository (`_layers/…/link`).
import type { Readable } from 'node:stream';
import { type Digest, isDigest, sha256 } from '../../oci/index.js';
import { isPathNotFound, type StorageDriver } from './driver.js';
import { linkContent, pathFor } from './paths.js';

export interface BlobDescriptor {
  digest: Digest;
  size: number;
}

export class BlobStore {
  constructor(readonly driver: StorageDriver) {}

  /** The blob's size, or undefined when the registry does not have it. */
  async stat(digest: Digest): Promise<BlobDescriptor | undefined> {
    try {
      const fi = await this.driver.stat(pathFor({ kind: 'blobData', digest }));
      return fi.isDir ? undefined : { digest, size: fi.size };
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

  /** Stores small content (manifests) by its sha256; existing content is left as is. */
  async put(data: Buffer): Promise<BlobDescriptor> {
    const digest = sha256(data);
    const have = await this.stat(digest);
    if (!have || have.size !== data.length) await this.driver.putContent(pathFor({ kind: 'blobData', digest }), data);
    return { digest, size: data.length };
  }

  /** Reads a link file; undefined when it is missing or does not hold a digest. */
  async readLink(linkPath: string): Promise<Digest | undefined> {
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

  writeLink(linkPath: string, digest: Digest): Promise<void> {
    return this.driver.putContent(linkPath, linkContent(digest), { sync: false });
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
    }
  }
}
