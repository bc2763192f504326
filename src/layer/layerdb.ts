// The on-disk format of `image/<driver>/layerdb` (moby
// daemon/internal/layer/filestore.go). Everything that knows file names and
// contents lives here:
//
//   sha256/<chainID hex>/diff               "sha256:<hex>" (no newline)
//   sha256/<chainID hex>/size               decimal bytes (no newline)
//   sha256/<chainID hex>/cache-id           graph driver ID (no newline)
//   sha256/<chainID hex>/parent             parent chain ID, only for non-base layers
//   sha256/<chainID hex>/descriptor.json    only when registered with a descriptor
//   sha256/<chainID hex>/tar-split.json.gz  tar-split metadata, gzip
//   mounts/<name>/{mount-id,init-id,parent} RW layers (containers)
//   tmp/                                    write sets being built
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, internal } from '../errors/index.js';
import { TEMP_PREFIX, WriteSet } from '../fsutil/index.js';
import { type Digest, digestHex, parseDigest } from '../oci/index.js';

export const TAR_SPLIT_FILE = 'tar-split.json.gz';
export const REMOVING = '-removing';

const HEX64 = /^[a-f0-9]{64}$/;
/** moby isValidID: mount and init IDs are 64 hex, init IDs with `-init`. */
const MOUNT_ID_RE = /^[a-f0-9]{64}(-init)?$/;
/** Driver IDs berth accepts in cache-id (moby writes 64 hex; older daemons other safe names). */
const CACHE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** Names of RW layers (container IDs, build step IDs). */
export const MOUNT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface LayerRecord {
  chainId: Digest;
  diffId: Digest;
  size: number;
  cacheId: string;
  parent?: Digest;
  descriptor?: Record<string, unknown>;
}

export interface MountRecord {
  name: string;
  mountId: string;
  initId?: string;
  parent?: Digest;
}

export function isValidMountId(s: string): boolean {
  return MOUNT_ID_RE.test(s);
}

export function isValidCacheId(s: string): boolean {
  return CACHE_ID_RE.test(s) && !s.endsWith(REMOVING);
}

/** Go's json.Marshal(distribution.Descriptor) field order. */
export function descriptorJson(desc: Record<string, unknown>): string {
  const order = ['mediaType', 'digest', 'size', 'urls', 'annotations', 'platform'];
  const out: Record<string, unknown> = {};
  for (const k of order) if (desc[k] !== undefined) out[k] = desc[k];
  for (const [k, v] of Object.entries(desc)) if (!(k in out) && v !== undefined) out[k] = v;
  return JSON.stringify(out);
}

async function readOptional(p: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(p, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

export class LayerDb {
  readonly sha256Dir: string;
  readonly mountsDir: string;
  readonly tmpDir: string;

  constructor(readonly root: string) {
    this.sha256Dir = path.join(root, 'sha256');
    this.mountsDir = path.join(root, 'mounts');
    this.tmpDir = path.join(root, 'tmp');
  }

  init(): void {
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.tmpDir, { recursive: true, mode: 0o755 });
  }

  layerDir(chainId: Digest): string {
    return path.join(this.sha256Dir, digestHex(chainId));
  }

  mountDir(name: string): string {
    return path.join(this.mountsDir, name);
  }

  tarSplitPath(chainId: Digest): string {
    return path.join(this.layerDir(chainId), TAR_SPLIT_FILE);
  }

  startTransaction(): Promise<WriteSet> {
    return WriteSet.create(this.tmpDir);
  }

  /** Writes the small files of a layer entry into a write set (moby storeLayer). */
  async writeLayerFiles(ws: WriteSet, rec: Omit<LayerRecord, 'chainId'>): Promise<void> {
    await ws.writeFile('diff', rec.diffId);
    await ws.writeFile('size', String(rec.size));
    await ws.writeFile('cache-id', rec.cacheId);
    if (rec.descriptor && typeof rec.descriptor.digest === 'string' && rec.descriptor.digest !== '') {
      await ws.writeFile('descriptor.json', descriptorJson(rec.descriptor));
    }
    if (rec.parent) await ws.writeFile('parent', rec.parent);
  }

  /**
   * Moves a finished write set to `sha256/<hex>` (synchronous: the caller
   * checks its in-memory map and renames with no await in between).
   * The set's own directory must already be fsynced.
   */
  commitLayerSync(ws: WriteSet, chainId: Digest): void {
    fs.mkdirSync(this.sha256Dir, { recursive: true, mode: 0o755 });
    fs.chmodSync(ws.root, 0o755);
    fs.renameSync(ws.root, this.layerDir(chainId));
  }

  /** Reads and validates one layer entry; throws internal with the reason. */
  async readLayer(hex: string): Promise<LayerRecord> {
    const dir = path.join(this.sha256Dir, hex);
    const chainId = parseDigest(`sha256:${hex}`);
    const need = async (name: string): Promise<string> => {
      const v = await readOptional(path.join(dir, name));
      if (v === undefined) throw internal(`layer ${chainId}: missing ${name}`);
      return v.trim();
    };
    let diffId: Digest;
    try {
      diffId = parseDigest(await need('diff'));
    } catch (e) {
      throw internal(`layer ${chainId}: invalid diff: ${(e as Error).message}`, e);
    }
    const sizeText = await need('size');
    if (!/^\d+$/.test(sizeText)) throw internal(`layer ${chainId}: invalid size ${JSON.stringify(sizeText)}`);
    const cacheId = await need('cache-id');
    if (!isValidCacheId(cacheId)) throw internal(`layer ${chainId}: invalid cache id value ${JSON.stringify(cacheId)}`);
    if (!fs.existsSync(path.join(dir, TAR_SPLIT_FILE))) throw internal(`layer ${chainId}: missing ${TAR_SPLIT_FILE}`);
    const rec: LayerRecord = { chainId, diffId, size: Number(sizeText), cacheId };
    const parentText = await readOptional(path.join(dir, 'parent'));
    if (parentText !== undefined && parentText.trim() !== '') {
      try {
        rec.parent = parseDigest(parentText.trim());
      } catch (e) {
        throw internal(`layer ${chainId}: invalid parent: ${(e as Error).message}`, e);
      }
    }
    const desc = await readOptional(path.join(dir, 'descriptor.json'));
    if (desc !== undefined) {
      try {
        rec.descriptor = JSON.parse(desc) as Record<string, unknown>;
      } catch (e) {
        throw internal(`layer ${chainId}: invalid descriptor.json`, e);
      }
    }
    return rec;
  }

  async readMount(name: string): Promise<MountRecord> {
    const dir = this.mountDir(name);
    const mountId = (await readOptional(path.join(dir, 'mount-id')))?.trim();
    if (mountId === undefined) throw internal(`mount ${name}: missing mount-id`);
    if (!isValidMountId(mountId)) throw internal(`mount ${name}: invalid mount id value`);
    const rec: MountRecord = { name, mountId };
    const initId = (await readOptional(path.join(dir, 'init-id')))?.trim();
    if (initId !== undefined) {
      if (!isValidMountId(initId)) throw internal(`mount ${name}: invalid init id value`);
      rec.initId = initId;
    }
    const parent = (await readOptional(path.join(dir, 'parent')))?.trim();
    if (parent !== undefined && parent !== '') {
      try {
        rec.parent = parseDigest(parent);
      } catch (e) {
        throw internal(`mount ${name}: invalid parent`, e);
      }
    }
    return rec;
  }

  /** Writes `mounts/<name>` as one write set renamed into place. */
  async writeMount(rec: MountRecord, opts: { durable?: boolean } = {}): Promise<void> {
    // Not durable (a container's record, at docker create): a few small files,
    // written with synchronous calls (each microseconds; thread-pool round
    // trips made this ~3 ms).
    if (opts.durable === false) {
      const ws = WriteSet.createSync(this.tmpDir);
      ws.durable = false;
      try {
        ws.writeFileSync('mount-id', rec.mountId);
        if (rec.initId) ws.writeFileSync('init-id', rec.initId);
        if (rec.parent) ws.writeFileSync('parent', rec.parent);
        fs.mkdirSync(this.mountsDir, { recursive: true, mode: 0o755 });
        fs.chmodSync(ws.root, 0o755);
        ws.commitSync(this.mountDir(rec.name));
      } catch (e) {
        ws.cancelSync();
        throw e;
      }
      return;
    }
    const ws = await this.startTransaction();
    try {
      await ws.writeFile('mount-id', rec.mountId);
      if (rec.initId) await ws.writeFile('init-id', rec.initId);
      if (rec.parent) await ws.writeFile('parent', rec.parent);
      await fsp.mkdir(this.mountsDir, { recursive: true, mode: 0o755 });
      await fsp.chmod(ws.root, 0o755);
      await ws.commit(this.mountDir(rec.name));
    } catch (e) {
      await ws.cancel();
      throw e;
    }
  }

  /** Renames `sha256/<hex>` to `sha256/<hex>-<rand>-removing` (moby deleteLayer); returns the new path. */
  markLayerRemovingSync(chainId: Digest): string {
    for (;;) {
      const doomed = path.join(this.sha256Dir, `${digestHex(chainId)}-${randomBytes(32).toString('hex')}${REMOVING}`);
      try {
        fs.renameSync(this.layerDir(chainId), doomed);
        return doomed;
      } catch (e) {
        if (errnoCode(e) === 'EEXIST' || errnoCode(e) === 'ENOTEMPTY') continue;
        throw e;
      }
    }
  }

  /**
   * Moves `mounts/<name>` into tmp/ (swept at startup) so a crash while the
   * driver dirs are removed never leaves a mount record pointing at nothing.
   */
  markMountRemovingSync(name: string): string {
    const doomed = path.join(this.tmpDir, `mount-${name}-${randomBytes(4).toString('hex')}${REMOVING}`);
    fs.renameSync(this.mountDir(name), doomed);
    return doomed;
  }

  /** Names in sha256/: valid entries, `-removing` ones and anything else. */
  async listLayerDirs(): Promise<{ valid: string[]; removing: string[]; junk: string[] }> {
    const out = { valid: [] as string[], removing: [] as string[], junk: [] as string[] };
    let names: string[];
    try {
      names = await fsp.readdir(this.sha256Dir);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return out;
      throw e;
    }
    for (const n of names) {
      if (HEX64.test(n)) out.valid.push(n);
      else if (n.endsWith(REMOVING) && HEX64.test(n.slice(0, 64))) out.removing.push(n);
      else out.junk.push(n);
    }
    return out;
  }

  async listMountDirs(): Promise<{ valid: string[]; junk: string[] }> {
    const out = { valid: [] as string[], junk: [] as string[] };
    let names: string[];
    try {
      names = await fsp.readdir(this.mountsDir);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return out;
      throw e;
    }
    for (const n of names) {
      if (MOUNT_NAME_RE.test(n) && !n.endsWith(REMOVING) && !n.startsWith(TEMP_PREFIX)) out.valid.push(n);
      else out.junk.push(n);
    }
    return out;
  }
}
