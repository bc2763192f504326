// In-process caches of the tree's small mutable files, for drivers that can
// version a file cheaply (the filesystem driver: one stat). They make a
// manifest GET by tag, and a manifest PUT's reference checks, cost a few stats
// instead of a few file reads each.
//
// Consistency guarantee: every lookup validates its entry against the file's
// CURRENT version (inode, size, mtime, ctime) before answering, so a change made
// by another process sharing the root (docker-registry, `registry
// garbage-collect`, a hand edit) is seen by the next request after it completes,
// exactly as without the cache. Writes by this process also drop their entries
// (and a rename gives a new inode anyway). The one gap of any stat-based cache —
// an in-place rewrite with the same size within the same timestamp tick, which
// is how distribution rewrites link files — is closed as git closes it ("racily
// clean" entries): an entry whose file changed less than RACY_MS before it was
// read is not trusted, the next lookup reads the file again.
//
// Blob existence is cached the same way (content-addressed: only the size is
// kept, and the stat says whether the file is still there).
import { type Digest, isDigest } from '../../oci/index.js';
import type { FileVersion, VersionedFiles } from './driver.js';

/** Files changed this recently (ms) before a read are re-read at the next lookup. */
export const RACY_MS = 100;

interface LinkEntry {
  handle: string;
  version: FileVersion;
  digest: Digest;
  clean: boolean;
}

const sameVersion = (a: FileVersion, b: FileVersion) =>
  a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;

export class LinkCache {
  private readonly links = new Map<string, LinkEntry>();
  private readonly blobs = new Map<Digest, string>();

  constructor(
    private readonly files: VersionedFiles,
    private readonly max = 100_000,
  ) {}

  /** Synchronous: the cached digest if still valid, null when the file is gone, undefined when unknown. */
  peek(path: string): Digest | null | undefined {
    const e = this.links.get(path);
    if (!e) return undefined;
    const v = this.files.versionSync(e.handle);
    if (!v) {
      this.links.delete(path);
      return null;
    }
    return e.clean && sameVersion(e.version, v) ? e.digest : undefined;
  }

  /** The digest a link file holds; undefined when missing or not a digest. */
  async read(path: string): Promise<Digest | undefined> {
    const hit = this.peek(path);
    if (hit !== undefined) return hit ?? undefined;
    const known = this.links.get(path);
    const handle = known?.handle ?? this.files.locate(path);
    // A missing file (a new tag, a blob not in the repository) costs one stat, not a failed open.
    if (!known && !this.files.versionSync(handle)) return undefined;
    const readAt = Date.now();
    const r = await this.files.readVersioned(handle);
    const s = r?.data.toString('utf8').trim();
    if (!r || !s || !isDigest(s)) {
      this.links.delete(path);
      return undefined;
    }
    const v = r.version;
    const clean = Math.max(v.mtimeMs, v.ctimeMs) < readAt - RACY_MS;
    this.links.delete(path); // re-insert: the map's order is least recently filled first
    this.links.set(path, { handle, version: v, digest: s as Digest, clean });
    if (this.links.size > this.max) this.links.delete(this.links.keys().next().value as string);
    return s as Digest;
  }

  /** Drops a link (this process wrote or removed it). */
  forget(path: string): void {
    this.links.delete(path);
  }

  /** Drops every link under a directory (a removed tag). */
  forgetUnder(dir: string): void {
    const prefix = `${dir}/`;
    for (const k of this.links.keys()) if (k.startsWith(prefix)) this.links.delete(k);
  }

  /** A known blob's size (stat-validated), null when it is gone, undefined when not known. */
  blobSize(digest: Digest): number | null | undefined {
    const h = this.blobs.get(digest);
    if (h === undefined) return undefined;
    const v = this.files.versionSync(h);
    if (!v) {
      this.blobs.delete(digest);
      return null;
    }
    return v.size;
  }

  rememberBlob(digest: Digest, path: string): void {
    if (this.blobs.has(digest)) return;
    this.blobs.set(digest, this.files.locate(path));
    if (this.blobs.size > this.max) this.blobs.delete(this.blobs.keys().next().value as Digest);
  }

  forgetBlob(digest: Digest): void {
    this.blobs.delete(digest);
  }

  clear(): void {
    this.links.clear();
    this.blobs.clear();
  }

  get size(): { links: number; blobs: number } {
    return { links: this.links.size, blobs: this.blobs.size };
  }
}
