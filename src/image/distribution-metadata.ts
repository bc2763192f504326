// Distribution metadata: `<root>/image/<driver>/distribution`, as moby's
// distribution/metadata writes it:
//   diffid-by-digest/sha256/<blob hex>       → "sha256:<diff id>"
//   v2metadata-by-diffid/sha256/<diff hex>   → [{"Digest","SourceRepository","HMAC"}, …]
// Directories 0755 (the base 0700), files 0644, atomic replace.
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors/index.js';
import { atomicWriteFileSync } from '../fsutil/index.js';
import { type Digest, digestAlgorithm, digestHex, isDigest } from '../oci/index.js';

export interface V2Metadata {
  Digest: Digest;
  SourceRepository: string;
  HMAC: string;
}

const DIFFID_NS = 'v2metadata-by-diffid';
const DIGEST_NS = 'diffid-by-digest';
/** Entries kept per diff ID; the oldest is dropped beyond this. */
export const MAX_METADATA = 50;

const key = (d: Digest) => path.join(digestAlgorithm(d), digestHex(d));

/** HMAC over Digest + SourceRepository with `hmacKey` (empty key → ""). */
export function computeV2MetadataHmac(hmacKey: Buffer | string, meta: Omit<V2Metadata, 'HMAC'>): string {
  if (hmacKey.length === 0) return '';
  return createHmac('sha256', hmacKey).update(meta.Digest).update(meta.SourceRepository).digest('hex');
}

const same = (a: V2Metadata, b: V2Metadata) =>
  a.Digest === b.Digest && a.SourceRepository === b.SourceRepository && a.HMAC === b.HMAC;

export class V2MetadataService {
  constructor(readonly basePath: string) {
    fs.mkdirSync(basePath, { recursive: true, mode: 0o700 });
  }

  private read(ns: string, k: string): Buffer | undefined {
    try {
      return fs.readFileSync(path.join(this.basePath, ns, k));
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  private write(ns: string, k: string, data: string): void {
    const p = path.join(this.basePath, ns, k);
    fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
    atomicWriteFileSync(p, data, { mode: 0o644 });
  }

  /** Known registry blobs of a layer, oldest first. */
  getMetadata(diffId: Digest): V2Metadata[] {
    const b = this.read(DIFFID_NS, key(diffId));
    if (!b) return [];
    const parsed = JSON.parse(b.toString('utf8')) as V2Metadata[] | null;
    return (parsed ?? []).map((m) => ({ Digest: m.Digest, SourceRepository: m.SourceRepository, HMAC: m.HMAC ?? '' }));
  }

  /** The diff ID of a registry blob digest, if known. */
  getDiffId(blob: Digest): Digest | undefined {
    const b = this.read(DIGEST_NS, key(blob));
    const s = b?.toString('utf8');
    return s && isDigest(s) ? s : undefined;
  }

  /** Records that `meta.Digest` is a compressed form of `diffId` (moves an existing equal entry to the end). */
  add(diffId: Digest, meta: V2Metadata): void {
    let list = this.getMetadata(diffId).filter((m) => !same(m, meta));
    list.push(meta);
    if (list.length > MAX_METADATA) list = list.slice(list.length - MAX_METADATA);
    const json = `[${list
      .map(
        (m) =>
          `{"Digest":${JSON.stringify(m.Digest)},"SourceRepository":${JSON.stringify(m.SourceRepository)},"HMAC":${JSON.stringify(m.HMAC)}}`,
      )
      .join(',')}]`;
    this.write(DIFFID_NS, key(diffId), json);
    this.write(DIGEST_NS, key(meta.Digest), diffId);
  }

  /** add() with the HMAC computed from `hmacKey`. */
  tagAndAdd(diffId: Digest, hmacKey: Buffer | string, meta: Omit<V2Metadata, 'HMAC'>): void {
    this.add(diffId, { ...meta, HMAC: computeV2MetadataHmac(hmacKey, meta) });
  }

  /** Removes one entry; deletes the diff ID's file when none remain. */
  remove(meta: V2Metadata): void {
    const diffId = this.getDiffId(meta.Digest);
    if (!diffId) return;
    const list = this.getMetadata(diffId).filter((m) => !same(m, meta));
    if (list.length === 0) {
      fs.rmSync(path.join(this.basePath, DIFFID_NS, key(diffId)), { force: true });
      return;
    }
    this.write(
      DIFFID_NS,
      key(diffId),
      `[${list.map((m) => `{"Digest":${JSON.stringify(m.Digest)},"SourceRepository":${JSON.stringify(m.SourceRepository)},"HMAC":${JSON.stringify(m.HMAC)}}`).join(',')}]`,
    );
  }
}
