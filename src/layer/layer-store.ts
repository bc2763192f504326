// The layer store (moby daemon/internal/layer/layer_store.go): read-only
// layers keyed by chain ID in `image/overlay2/layerdb`, and RW layers
// (containers) in `layerdb/mounts`, both backed by a graph driver.
//
// Reference counts live only in memory. At open every layer counts its child
// layers and the RW layers on it; callers (the image store) add references
// with get()/register() and give them back with release(). A layer is deleted
// when its last reference of any kind goes, and the deletion walks up parents.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { KeyedMutex } from '../concurrency/index.js';
import { conflict, errnoCode, failedPrecondition, invalidArgument, notFound } from '../errors/index.js';
import { fsyncDir, REMOVING_SUFFIX, TEMP_PREFIX, type WriteSet } from '../fsutil/index.js';
import { assembleTar } from '../graphdriver/archive-port.js';
import { type DirTemplate, recordTree, replayTree } from '../graphdriver/dir-template.js';
import { directorySize } from '../graphdriver/dirsize.js';
import type { Change, GraphDriver, LayeredSource } from '../graphdriver/driver.js';
import { LINK_ID_RE } from '../graphdriver/overlay2/base32.js';
import { Overlay2Driver } from '../graphdriver/overlay2/overlay2.js';
import { type Logger, nullLogger } from '../log/index.js';
import { chainIdOf, type Digest, DigestStream, VerifyingStream } from '../oci/index.js';
import { LayerDb, type LayerRecord, MOUNT_NAME_RE, type MountRecord, TAR_SPLIT_FILE } from './layerdb.js';

/** 125: the 127 lower dirs some drivers allow, minus the init and container layers (moby). */
export const MAX_LAYER_DEPTH = 125;

export interface Layer {
  chainId: Digest;
  diffId: Digest;
  parent?: Digest;
  /** This layer's own size (layerdb `size`, moby DiffSize()). */
  size: number;
  /** Size including all parents (moby Layer.Size()). */
  totalSize: number;
  cacheId: string;
  descriptor?: Record<string, unknown>;
  /** The layer's tar, reassembled from tar-split + diff dir; the stream fails if it does not hash to diffId. */
  tarStream(): Readable;
  /** Inspect's GraphDriver.Data. */
  metadata(): Promise<Record<string, string>>;
}

/** What release() deleted (moby layer.Metadata). */
export interface LayerMetadata {
  chainId: Digest;
  diffId: Digest;
  size: number;
  diffSize: number;
}

export interface RWLayer {
  name: string;
  mountId: string;
  initId?: string;
  parent?: Digest;
  /** Mounts (refcounted) and returns the container root filesystem. */
  mount(mountLabel?: string): Promise<string>;
  unmount(): Promise<void>;
  changes(): Promise<Change[]>;
  /** The container's own changes as a tar (overlay whiteouts → .wh. entries). */
  tarStream(): Readable;
  size(): Promise<number>;
  metadata(): Promise<Record<string, string>>;
  /** Where the layer's merged view of `rel` comes from without mounting (null: mount to know). */
  soleSource(rel: string): Promise<LayeredSource | null>;
}

export interface CreateRWLayerOpts {
  /** Runs on the mounted `<mount-id>-init` layer (writes /etc/hosts, /etc/resolv.conf …). */
  initFunc?: (rootDir: string) => Promise<void>;
  /**
   * Names what initFunc writes: init layers made with the same key over the
   * same parent come out the same, so the first is recorded and the next ones
   * are re-created from that record without mounting (see dir-template.ts).
   */
  initKey?: string;
  mountLabel?: string;
  storageOpt?: Record<string, string>;
}

export interface RegisterOpts {
  signal?: AbortSignal;
  /** Stored as descriptor.json (foreign layers); only when it has a digest. */
  descriptor?: Record<string, unknown>;
}

export interface StageOptions {
  signal?: AbortSignal;
  /** Extract on a worker thread (for large layers: concurrent stages then use several cores). */
  offThread?: boolean;
  /** `tar` is still compressed so; the store decompresses it (the diff ID is of the uncompressed tar). */
  compression?: 'gzip' | 'zstd' | 'none';
  /** The chunks of `tar` belong to nobody else once read (may be handed to the worker without a copy). */
  transferChunks?: boolean;
}

/** A layer extracted by stage(), not yet part of any chain. */
export interface StagedLayer {
  readonly diffId: Digest;
  /** What layerdb `size` will say (moby's directory size of the diff). */
  readonly size: number;
  /** Bytes of the uncompressed tar. */
  readonly tarSize: number;
  readonly cacheId: string;
  /** The layerdb write set holding tar-split.json.gz (internal to the store). */
  readonly ws: WriteSet;
  /** Throws the staged layer away (no-op once committed or discarded). */
  discard(): Promise<void>;
  /** Internal: commitStaged marks it consumed. */
  markCommitted(): void;
}

export interface OpenOptions {
  logger?: Logger;
  /** An already initialised driver (defaults to overlay2 at `<dataRoot>/overlay2`). */
  driver?: GraphDriver;
}

class RoLayer {
  /** References held by callers (get/register). */
  refs = 0;
  /** Child layers and RW layers on this layer. */
  children = 0;
  constructor(
    readonly rec: LayerRecord,
    readonly parent: RoLayer | undefined,
  ) {}
  get chainId(): Digest {
    return this.rec.chainId;
  }
  depth(): number {
    let n = 1;
    for (let p = this.parent; p; p = p.parent) n++;
    return n;
  }
  totalSize(): number {
    let n = 0;
    for (let l: RoLayer | undefined = this; l; l = l.parent) n += l.rec.size;
    return n;
  }
}

interface MountedLayer {
  rec: MountRecord;
  parent: RoLayer | undefined;
}

const randomId = () => randomBytes(32).toString('hex');

export class LayerStore {
  private readonly layers = new Map<Digest, RoLayer>();
  private readonly mounts = new Map<string, MountedLayer>();
  /** Recorded init layers by `<initKey>\0<parent chain ID>` (see CreateRWLayerOpts.initKey). */
  private readonly initTemplates = new Map<string, DirTemplate>();
  private readonly rwLocks = new KeyedMutex();
  private closed = false;

  private constructor(
    readonly db: LayerDb,
    readonly driver: GraphDriver,
    private readonly log: Logger,
  ) {}

  /**
   * Opens the store of `dataRoot` (a /var/lib/docker-shaped root): sweeps what
   * a crash left, loads layers and mounts and rebuilds their reference counts.
   */
  static async open(dataRoot: string, opts: OpenOptions = {}): Promise<LayerStore> {
    const log = opts.logger ?? nullLogger;
    const driver = opts.driver ?? (await Overlay2Driver.init(path.join(dataRoot, 'overlay2'), { logger: log }));
    const db = new LayerDb(path.join(dataRoot, 'image', driver.name, 'layerdb'));
    db.init();
    const store = new LayerStore(db, driver, log.with({ module: 'layer-store' }));
    await store.restore();
    return store;
  }

  // ---------------------------------------------------------------- startup

  private async restore(): Promise<void> {
    const { db, log } = this;
    // 1. write sets and mount records being removed when we died
    for (const n of await fsp.readdir(db.tmpDir)) {
      await fsp.rm(path.join(db.tmpDir, n), { recursive: true, force: true });
      log.info('removed unfinished layerdb transaction', { name: n });
    }
    const dirs = await db.listLayerDirs();
    // 2. layers whose deletion was interrupted (moby Cleanup/getOrphan)
    for (const n of dirs.removing) await this.finishRemoval(path.join(db.sha256Dir, n));
    for (const n of dirs.junk) {
      if (n.startsWith(TEMP_PREFIX)) {
        await fsp.rm(path.join(db.sha256Dir, n), { recursive: true, force: true });
      } else log.warn('ignoring unexpected entry in layerdb', { name: n });
    }
    // 3. load layers; drop invalid ones and everything stacked on them
    const recs = new Map<Digest, LayerRecord>();
    const bad = new Map<string, string>();
    for (const hex of dirs.valid) {
      try {
        const rec = await db.readLayer(hex);
        recs.set(rec.chainId, rec);
      } catch (e) {
        bad.set(hex, (e as Error).message);
      }
    }
    const resolve = (id: Digest, seen: Set<Digest>): RoLayer | undefined => {
      const have = this.layers.get(id);
      if (have) return have;
      const rec = recs.get(id);
      if (!rec || seen.has(id)) return undefined;
      seen.add(id);
      let parent: RoLayer | undefined;
      if (rec.parent) {
        parent = resolve(rec.parent, seen);
        if (!parent) return undefined;
      }
      const l = new RoLayer(rec, parent);
      if (parent) parent.children++;
      this.layers.set(id, l);
      return l;
    };
    for (const id of recs.keys()) {
      if (!resolve(id, new Set())) bad.set(id.slice(7), `parent ${recs.get(id)?.parent} is missing or invalid`);
    }
    for (const [hex, why] of bad) {
      log.warn('removing invalid layer', { chainID: `sha256:${hex}`, reason: why });
      const doomed = db.markLayerRemovingSync(`sha256:${hex}` as Digest);
      await this.finishRemoval(doomed);
    }
    // 4. RW layers
    const mdirs = await db.listMountDirs();
    for (const n of mdirs.junk) {
      log.warn('removing unexpected entry in layerdb mounts', { name: n });
      await fsp.rm(db.mountDir(n), { recursive: true, force: true });
    }
    for (const name of mdirs.valid) {
      let rec: MountRecord | undefined;
      let why = '';
      try {
        rec = await db.readMount(name);
        if (rec.parent && !this.layers.has(rec.parent)) why = `parent ${rec.parent} does not exist`;
        // RW layers are not fsynced: after a crash their driver dirs may be gone or incomplete
        else if (!(await this.driverDirComplete(rec.mountId, !!(rec.initId || rec.parent))))
          why = `driver dir ${rec.mountId} is missing or incomplete`;
        else if (rec.initId && !(await this.driverDirComplete(rec.initId, !!rec.parent)))
          why = `driver dir ${rec.initId} is missing or incomplete`;
      } catch (e) {
        why = (e as Error).message;
      }
      if (!rec || why) {
        log.warn('removing invalid mount', { name, reason: why });
        const doomed = db.markMountRemovingSync(name);
        if (rec) await this.removeDriverDirs(rec);
        await fsp.rm(doomed, { recursive: true, force: true });
        continue;
      }
      const parent = rec.parent ? this.layers.get(rec.parent) : undefined;
      if (parent) parent.children++;
      this.mounts.set(name, { rec, parent });
    }
    // 5. driver dirs no entry refers to (a crash between driver.create and the layerdb commit)
    const referenced = this.referencedDriverIds();
    for (const id of await this.driver.list()) {
      if (referenced.has(id)) continue;
      log.info('removing orphaned graph driver directory', { id });
      await this.driver.remove(id);
    }
  }

  private async driverDirComplete(id: string, hasParent: boolean): Promise<boolean> {
    if (this.driver.isComplete) return this.driver.isComplete(id, hasParent);
    return this.driver.exists(id);
  }

  private referencedDriverIds(): Set<string> {
    const s = new Set<string>();
    for (const l of this.layers.values()) s.add(l.rec.cacheId);
    for (const m of this.mounts.values()) {
      s.add(m.rec.mountId);
      if (m.rec.initId) s.add(m.rec.initId);
    }
    return s;
  }

  /** Removes a `-removing` layerdb entry and the driver dir its cache-id names. */
  private async finishRemoval(doomed: string): Promise<void> {
    try {
      const cacheId = (await fsp.readFile(path.join(doomed, 'cache-id'), 'utf8')).trim();
      if (cacheId && this.driver.exists(cacheId) && !this.cacheIdInUse(cacheId)) await this.driver.remove(cacheId);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') this.log.warn('cannot read cache id of removed layer', { dir: doomed });
    }
    await fsp.rm(doomed, { recursive: true, force: true });
    this.log.info('removed layer left over from an interrupted deletion', { dir: path.basename(doomed) });
  }

  private cacheIdInUse(cacheId: string): boolean {
    for (const l of this.layers.values()) if (l.rec.cacheId === cacheId) return true;
    return false;
  }

  private async removeDriverDirs(rec: MountRecord): Promise<void> {
    if (this.driver.exists(rec.mountId)) await this.driver.remove(rec.mountId);
    if (rec.initId && this.driver.exists(rec.initId)) await this.driver.remove(rec.initId);
  }

  // ---------------------------------------------------------------- read-only layers

  private handle(l: RoLayer): Layer {
    const h: Layer = {
      chainId: l.rec.chainId,
      diffId: l.rec.diffId,
      size: l.rec.size,
      totalSize: l.totalSize(),
      cacheId: l.rec.cacheId,
      tarStream: () => this.tarStreamOf(l.rec),
      metadata: () => this.driver.metadata(l.rec.cacheId),
    };
    if (l.rec.parent) h.parent = l.rec.parent;
    if (l.rec.descriptor) h.descriptor = l.rec.descriptor;
    return Object.freeze(h);
  }

  private tarStreamOf(rec: LayerRecord): Readable {
    const out = new PassThrough();
    let src: Readable;
    try {
      src = assembleTar(this.db.tarSplitPath(rec.chainId), this.driver.diffPath(rec.cacheId));
    } catch (e) {
      process.nextTick(() => out.destroy(e as Error));
      return out;
    }
    // moby newVerifiedReadCloser: the stream fails unless the bytes hash to the diff ID
    pipeline(src, new VerifyingStream(rec.diffId), out, () => {});
    return out;
  }

  /**
   * Applies `tar` as a new layer on `parent` and returns it with one
   * reference taken. Registering content that already exists returns the
   * existing layer (new reference) and discards the new copy.
   */
  async register(tar: Readable, parent?: Digest, opts: RegisterOpts = {}): Promise<Layer> {
    if (parent && !this.layers.has(parent)) throw notFound(`layer does not exist: ${parent}`);
    const staged = await this.stage(tar, opts);
    return this.commitStaged(staged, parent, opts);
  }

  /**
   * Extracts a layer tar before its parent is known: a layer's diff directory
   * never depends on its parent, so pull and load can extract several layers
   * at once, in whatever order their bytes arrive, and commit them in order
   * afterwards (commitStaged). Until committed, a staged layer is an orphan
   * driver dir plus a write set in layerdb/tmp: a crash leaves nothing that
   * open() does not sweep. Call discard() if it will not be committed.
   */
  async stage(tar: Readable, opts: StageOptions = {}): Promise<StagedLayer> {
    this.assertOpen();
    const cacheId = randomId();
    const ws = await this.db.startTransaction();
    let created = false;
    try {
      await this.driver.create(cacheId);
      created = true;
      const tarSplit = ws.pathOf(TAR_SPLIT_FILE);
      const applied = await this.driver.applyDiff(cacheId, undefined, tar, {
        tarSplitPath: tarSplit,
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.offThread ? { offThread: true } : {}),
        ...(opts.compression ? { compression: opts.compression } : {}),
        ...(opts.transferChunks ? { transferChunks: true } : {}),
      });
      await fsp.chmod(tarSplit, 0o644); // moby's mode, whatever the writer used
      await fsyncFile(tarSplit);
      let done = false;
      return {
        diffId: applied.diffId,
        size: applied.size,
        tarSize: applied.tarSize,
        cacheId,
        ws,
        discard: async () => {
          if (done) return;
          done = true;
          await ws.cancel().catch(() => {});
          await this.driver.remove(cacheId).catch(() => {});
        },
        markCommitted: () => {
          done = true;
        },
      };
    } catch (e) {
      await ws.cancel().catch(() => {});
      if (created) await this.driver.remove(cacheId).catch(() => {});
      throw e;
    }
  }

  /**
   * Makes a staged layer the child of `parent` and records it in layerdb,
   * returning it with one reference taken. If that chain ID exists already
   * (a concurrent or repeated registration), the staged copy is discarded and
   * the existing layer returned. A staged layer is consumed either way.
   */
  async commitStaged(staged: StagedLayer, parent?: Digest, opts: RegisterOpts = {}): Promise<Layer> {
    this.assertOpen();
    let p: RoLayer | undefined;
    let result: RoLayer | undefined;
    try {
      if (parent) {
        p = this.layers.get(parent);
        if (!p) throw notFound(`layer does not exist: ${parent}`);
        if (p.depth() >= MAX_LAYER_DEPTH) throw invalidArgument('max depth exceeded');
        p.children++; // the new layer's reference on its parent; dropped below unless committed
      }
      const rec: LayerRecord = {
        chainId: chainIdOf(p?.chainId, staged.diffId),
        diffId: staged.diffId,
        size: staged.size,
        cacheId: staged.cacheId,
      };
      const existingEarly = this.layers.get(rec.chainId);
      if (existingEarly) {
        existingEarly.refs++;
        return this.handle(existingEarly);
      }
      if (p) {
        rec.parent = p.chainId;
        await this.driver.attachParent(staged.cacheId, p.rec.cacheId);
      }
      if (opts.descriptor && typeof opts.descriptor.digest === 'string' && opts.descriptor.digest) {
        rec.descriptor = opts.descriptor;
      }
      await this.db.writeLayerFiles(staged.ws, rec);
      await fsyncDir(staged.ws.root);
      // From here to the rename: no await, so the existence check and the commit are atomic.
      const existing = this.layers.get(rec.chainId);
      if (existing) {
        existing.refs++;
        return this.handle(existing);
      }
      this.db.commitLayerSync(staged.ws, rec.chainId);
      staged.markCommitted();
      result = new RoLayer(rec, p);
      result.refs = 1;
      this.layers.set(rec.chainId, result);
    } finally {
      if (!result) {
        await staged.discard();
        if (p) {
          p.children--;
          await this.maybeDelete(p);
        }
      }
    }
    await fsyncDir(this.db.sha256Dir);
    return this.handle(result);
  }

  /** The layer with one more reference; throws not-found. */
  get(chainId: Digest): Layer {
    const l = this.layers.get(chainId);
    if (!l) throw notFound(`layer does not exist: ${chainId}`);
    l.refs++;
    return this.handle(l);
  }

  /** A view of the layer without taking a reference. */
  peek(chainId: Digest): Layer | undefined {
    const l = this.layers.get(chainId);
    return l ? this.handle(l) : undefined;
  }

  has(chainId: Digest): boolean {
    return this.layers.has(chainId);
  }

  list(): Layer[] {
    return [...this.layers.values()].map((l) => this.handle(l));
  }

  /** References held on a layer: [caller references, children + RW layers] (tests, diagnostics). */
  referenceCounts(chainId: Digest): { refs: number; children: number } | undefined {
    const l = this.layers.get(chainId);
    return l ? { refs: l.refs, children: l.children } : undefined;
  }

  /**
   * Gives back a reference taken by get()/register(). When nothing references
   * the layer any more it is deleted, then its parent if that became
   * unreferenced, and so on. Returns what was deleted.
   */
  async release(chainId: Digest): Promise<LayerMetadata[]> {
    const l = this.layers.get(chainId);
    if (!l) throw notFound(`layer does not exist: ${chainId}`);
    if (l.refs <= 0) throw failedPrecondition(`layer not retained: ${chainId}`);
    l.refs--;
    return this.maybeDelete(l);
  }

  private async maybeDelete(start: RoLayer): Promise<LayerMetadata[]> {
    const removed: LayerMetadata[] = [];
    let l: RoLayer | undefined = start;
    while (l) {
      if (l.refs > 0 || l.children > 0) break;
      // Synchronous: forget it and rename its entry away before anything else runs.
      this.layers.delete(l.chainId);
      for (const k of this.initTemplates.keys()) if (k.endsWith(`\0${l.chainId}`)) this.initTemplates.delete(k);
      const doomed = this.db.markLayerRemovingSync(l.chainId);
      await this.driver.remove(l.rec.cacheId);
      await fsp.rm(doomed, { recursive: true, force: true });
      removed.push({ chainId: l.chainId, diffId: l.rec.diffId, size: l.totalSize(), diffSize: l.rec.size });
      const parent: RoLayer | undefined = l.parent;
      if (parent) parent.children--;
      l = parent;
    }
    return removed;
  }

  // ---------------------------------------------------------------- RW layers

  async createRWLayer(name: string, parent: Digest | undefined, opts: CreateRWLayerOpts = {}): Promise<RWLayer> {
    this.assertOpen();
    if (!MOUNT_NAME_RE.test(name) || name.endsWith(REMOVING_SUFFIX)) {
      throw invalidArgument(`invalid RW layer name ${JSON.stringify(name)}`);
    }
    return this.rwLocks.run(name, async () => {
      if (this.mounts.has(name) || fs.existsSync(this.db.mountDir(name))) {
        throw conflict(`mount already exists with name: ${name}`);
      }
      let p: RoLayer | undefined;
      if (parent) {
        p = this.layers.get(parent);
        if (!p) throw notFound(`layer does not exist: ${parent}`);
        p.children++;
      }
      const rec: MountRecord = { name, mountId: randomId() };
      if (p) rec.parent = p.chainId;
      let ok = false;
      try {
        let below = p?.rec.cacheId;
        // Not fsynced (moby does not either): a crash may lose or truncate a
        // RW layer; restore() drops mount records whose driver dirs are
        // missing or incomplete, and sweeps driver dirs nothing refers to.
        const createOpts = {
          ...(opts.storageOpt ? { storageOpt: opts.storageOpt } : {}),
          ...(opts.mountLabel ? { mountLabel: opts.mountLabel } : {}),
          durable: false,
        };
        if (opts.initFunc) {
          // "<mount-id>-init": the name drivers (and dockerd) expect.
          const initId = `${rec.mountId}-init`;
          await this.driver.createReadWrite(initId, below, createOpts);
          rec.initId = initId;
          const key = opts.initKey && !opts.mountLabel ? `${opts.initKey}\0${p?.chainId ?? ''}` : undefined;
          const template = key ? this.initTemplates.get(key) : undefined;
          if (template) replayTree(template, this.driver.diffPath(initId));
          else {
            const root = await this.driver.get(initId, opts.mountLabel);
            try {
              await opts.initFunc(root);
            } finally {
              await this.driver.put(initId);
            }
            if (key) {
              const t = recordTree(this.driver.diffPath(initId));
              if (t) this.initTemplates.set(key, t);
            }
          }
          below = initId;
        }
        await this.driver.createReadWrite(rec.mountId, below, createOpts);
        await this.db.writeMount(rec, { durable: false });
        this.mounts.set(name, { rec, parent: p });
        ok = true;
      } finally {
        if (!ok) {
          await this.removeDriverDirs(rec).catch(() => {});
          if (p) {
            p.children--;
            await this.maybeDelete(p);
          }
        }
      }
      return this.rwHandle(rec);
    });
  }

  getRWLayer(name: string): RWLayer {
    const m = this.mounts.get(name);
    if (!m) throw notFound(`mount does not exist: ${name}`);
    return this.rwHandle(m.rec);
  }

  hasRWLayer(name: string): boolean {
    return this.mounts.has(name);
  }

  listRWLayers(): RWLayer[] {
    return [...this.mounts.values()].map((m) => this.rwHandle(m.rec));
  }

  /** The graph driver ID of a RW layer (moby GetMountID). */
  mountId(name: string): string {
    const m = this.mounts.get(name);
    if (!m) throw notFound(`mount does not exist: ${name}`);
    return m.rec.mountId;
  }

  private rwHandle(rec: MountRecord): RWLayer {
    const d = this.driver;
    const below = rec.initId ?? (rec.parent ? this.layers.get(rec.parent)?.rec.cacheId : undefined);
    const h: RWLayer = {
      name: rec.name,
      mountId: rec.mountId,
      mount: (label?: string) => d.get(rec.mountId, label),
      unmount: () => d.put(rec.mountId),
      changes: () => d.changes(rec.mountId, below),
      tarStream: () => d.diff(rec.mountId, below),
      size: () => d.diffSize(rec.mountId, below),
      metadata: () => d.metadata(rec.mountId),
      soleSource: (rel: string) => (d.soleSource ? d.soleSource(rec.mountId, rel) : Promise.resolve(null)),
    };
    if (rec.initId) h.initId = rec.initId;
    if (rec.parent) h.parent = rec.parent;
    return Object.freeze(h);
  }

  /** Deletes a RW layer (unmounting it), then releases its parent layer. */
  async releaseRWLayer(name: string): Promise<LayerMetadata[]> {
    return this.rwLocks.run(name, async () => {
      const m = this.mounts.get(name);
      if (!m) return [];
      this.mounts.delete(name);
      const doomed = this.db.markMountRemovingSync(name);
      await fsyncDir(this.db.mountsDir);
      await this.removeDriverDirs(m.rec);
      await fsp.rm(doomed, { recursive: true, force: true });
      if (!m.parent) return [];
      m.parent.children--;
      return this.maybeDelete(m.parent);
    });
  }

  // ---------------------------------------------------------------- consistency

  /**
   * Verifies everything on disk against the in-memory state and moby's
   * invariants. Returns the problems found (empty = consistent).
   * `verifyContent: false` skips re-hashing every layer's tar.
   */
  async check(opts: { verifyContent?: boolean } = {}): Promise<string[]> {
    const problems: string[] = [];
    const { db, driver } = this;
    const home = driver.home;
    const tmp = await fsp.readdir(db.tmpDir).catch(() => []);
    if (tmp.length) problems.push(`layerdb/tmp not empty: ${tmp.join(', ')}`);
    const dirs = await db.listLayerDirs();
    for (const n of [...dirs.removing, ...dirs.junk]) problems.push(`layerdb/sha256: leftover entry ${n}`);
    const onDisk = new Set(dirs.valid.map((h) => `sha256:${h}`));
    for (const l of this.layers.values()) {
      if (!onDisk.has(l.chainId)) problems.push(`layer ${l.chainId}: in memory but not on disk`);
    }
    for (const id of onDisk) if (!this.layers.has(id as Digest)) problems.push(`layer ${id}: on disk but not loaded`);

    const linkOf = async (id: string): Promise<string | undefined> => {
      try {
        return await fsp.readFile(path.join(home, id, 'link'), 'utf8');
      } catch {
        return undefined;
      }
    };
    const checkDriverDir = async (what: string, id: string, below: string | undefined) => {
      if (!driver.exists(id)) {
        problems.push(`${what}: driver dir ${id} missing`);
        return;
      }
      const link = await linkOf(id);
      if (link === undefined || !LINK_ID_RE.test(link)) {
        problems.push(`${what}: invalid link file in ${id}`);
      } else {
        const target = await fsp.readlink(path.join(home, 'l', link)).catch(() => undefined);
        if (target !== `../${id}/diff`) problems.push(`${what}: l/${link} points to ${target ?? 'nothing'}`);
      }
      const lower = await fsp.readFile(path.join(home, id, 'lower'), 'utf8').catch(() => undefined);
      if (below === undefined) {
        if (lower !== undefined) problems.push(`${what}: base layer ${id} has a lower file`);
      } else {
        const parentLink = await linkOf(below);
        const parentLower = await fsp.readFile(path.join(home, below, 'lower'), 'utf8').catch(() => undefined);
        const want = [`l/${parentLink}`, ...(parentLower ? [parentLower] : [])].join(':');
        if (lower !== want)
          problems.push(`${what}: lower is ${JSON.stringify(lower)}, expected ${JSON.stringify(want)}`);
      }
    };

    for (const l of this.layers.values()) {
      const what = `layer ${l.chainId}`;
      let rec: LayerRecord;
      try {
        rec = await db.readLayer(l.chainId.slice(7));
      } catch (e) {
        problems.push(`${what}: ${(e as Error).message}`);
        continue;
      }
      if (rec.diffId !== l.rec.diffId || rec.cacheId !== l.rec.cacheId || rec.parent !== l.rec.parent) {
        problems.push(`${what}: files changed since load`);
      }
      if (chainIdOf(l.parent?.chainId, rec.diffId) !== l.chainId) problems.push(`${what}: chain ID does not match`);
      if (rec.parent && !this.layers.has(rec.parent)) problems.push(`${what}: parent ${rec.parent} missing`);
      await checkDriverDir(what, rec.cacheId, l.parent?.rec.cacheId);
      if (!driver.exists(rec.cacheId)) continue;
      const size = await directorySize(driver.diffPath(rec.cacheId));
      if (size !== rec.size) problems.push(`${what}: size file says ${rec.size}, diff dir holds ${size}`);
      if (opts.verifyContent !== false) {
        try {
          await drainDigest(this.tarStreamOf(rec));
        } catch (e) {
          problems.push(`${what}: tar stream does not verify: ${(e as Error).message}`);
        }
      }
    }
    const mdirs = await db.listMountDirs();
    for (const n of mdirs.junk) problems.push(`layerdb/mounts: leftover entry ${n}`);
    for (const n of mdirs.valid) if (!this.mounts.has(n)) problems.push(`mount ${n}: on disk but not loaded`);
    for (const m of this.mounts.values()) {
      const what = `mount ${m.rec.name}`;
      try {
        const rec = await db.readMount(m.rec.name);
        if (rec.mountId !== m.rec.mountId || rec.initId !== m.rec.initId || rec.parent !== m.rec.parent) {
          problems.push(`${what}: files changed since load`);
        }
      } catch (e) {
        problems.push(`${what}: ${(e as Error).message}`);
      }
      const parentCache = m.parent?.rec.cacheId;
      if (m.rec.initId) await checkDriverDir(`${what} init`, m.rec.initId, parentCache);
      await checkDriverDir(what, m.rec.mountId, m.rec.initId ?? parentCache);
    }
    // reference counts match the graph
    const expected = new Map<RoLayer, number>();
    for (const l of this.layers.values()) if (l.parent) expected.set(l.parent, (expected.get(l.parent) ?? 0) + 1);
    for (const m of this.mounts.values()) if (m.parent) expected.set(m.parent, (expected.get(m.parent) ?? 0) + 1);
    for (const l of this.layers.values()) {
      if ((expected.get(l) ?? 0) !== l.children)
        problems.push(`layer ${l.chainId}: child count ${l.children} is wrong`);
    }
    // orphans in the driver home
    const referenced = this.referencedDriverIds();
    for (const n of await fsp.readdir(home)) {
      if (n === 'l') continue;
      if (n.startsWith(TEMP_PREFIX) || n.endsWith(REMOVING_SUFFIX)) problems.push(`overlay2: leftover ${n}`);
      else if (!referenced.has(n)) problems.push(`overlay2: orphan directory ${n}`);
      else {
        for (const f of await fsp.readdir(path.join(home, n))) {
          if (f.startsWith(TEMP_PREFIX)) problems.push(`overlay2: leftover temp file ${n}/${f}`);
        }
      }
    }
    for (const n of await fsp.readdir(path.join(home, 'l'))) {
      const target = await fsp.readlink(path.join(home, 'l', n)).catch(() => '');
      const m = /^\.\.\/(.+)\/diff$/.exec(target);
      if (!m || !referenced.has(m[1] as string)) problems.push(`overlay2: stray link l/${n} → ${target}`);
    }
    return problems;
  }

  /** Unmounts everything (daemon shutdown). The store must not be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.driver.cleanup();
  }

  /** Driver Status rows of `docker info`. */
  driverStatus(): Array<[string, string]> {
    return this.driver.status();
  }

  private assertOpen(): void {
    if (this.closed) throw failedPrecondition('layer store is closed');
  }
}

async function fsyncFile(p: string): Promise<void> {
  const fh = await fsp.open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function drainDigest(r: Readable): Promise<Digest> {
  const d = new DigestStream();
  await new Promise<void>((resolve, reject) => {
    pipeline(r, d, (e) => (e ? reject(e) : resolve()));
    d.resume();
  });
  return d.digest();
}
