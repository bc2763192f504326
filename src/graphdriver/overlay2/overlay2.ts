// The overlay2 graph driver, laid out exactly like moby's
// (daemon/graphdriver/overlay2/overlay.go) so dockerd and berth can share a
// data-root:
//
//   <home>/<id>/diff        the layer's own files (upper dir of its mounts)
//   <home>/<id>/link        26-char base32 short id, no newline
//   <home>/l/<short>        symlink → ../<id>/diff
//   <home>/<id>/lower       "l/<parent short>:<parent's lower>" (absent for base layers)
//   <home>/<id>/work        overlay workdir (layers with a parent)
//   <home>/<id>/merged      mount point, only while mounted
//   <home>/<id>/committed   empty, written on a layer when a child is created on it
//
// Crash safety beyond moby: a layer directory is assembled under a `.tmp-`
// name and renamed into place once complete; removal renames to
// `<id>-<rand>-removing` first. init() sweeps both, and l/ links left
// dangling by a crash.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { KeyedMutex } from '../../concurrency/index.js';
import { alreadyExists, errnoCode, internal, invalidArgument, notFound } from '../../errors/index.js';
import {
  atomicWriteFile,
  atomicWriteFileSync,
  fsyncDir,
  fsyncDirSync,
  REMOVING_SUFFIX,
  TEMP_PREFIX,
} from '../../fsutil/index.js';
import { type Logger, nullLogger } from '../../log/index.js';
import { MNT_DETACH, native } from '../../native/index.js';
import { applyLayer, applyLayerOffThread, changes, decompressor, exportDiff } from '../archive-port.js';
import { directorySize } from '../dirsize.js';
import type { ApplyDiffOptions, ApplyDiffResult, Change, CreateOpts, GraphDriver, LayeredSource } from '../driver.js';
import { generateLinkId, LINK_ID_RE } from './base32.js';
import {
  backingFsName,
  checkOverlaySupport,
  isOverlayMount,
  mountsUnder,
  nativeDiffSupported,
  overlayHasIndexParam,
  runningInUserNS,
  supportsDType,
} from './fsinfo.js';

export const DRIVER_NAME = 'overlay2';
export const LINK_DIR = 'l';
export const DIFF_DIR = 'diff';
export const WORK_DIR = 'work';
export const MERGED_DIR = 'merged';
export const LOWER_FILE = 'lower';
export const LINK_FILE = 'link';
export const COMMITTED_FILE = 'committed';
/** Hard limit of lower layers, so the mount data fits one page (moby maxDepth). */
export const MAX_DEPTH = 128;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const PAGE_SIZE = 4096;

export interface Overlay2Options {
  logger?: Logger;
  /** Driver options (`overlay2.size` …); none are supported yet. */
  options?: string[];
}

export class Overlay2Driver implements GraphDriver {
  readonly name = DRIVER_NAME;
  private readonly locks = new KeyedMutex();
  /** Mount reference counts by layer ID (moby mountref.Counter). */
  private readonly mountCounts = new Map<string, number>();
  private readonly log: Logger;

  private constructor(
    readonly home: string,
    private readonly backingFs: string,
    private readonly dType: boolean,
    private readonly nativeDiff: boolean,
    private readonly mountPrefix: string,
    private readonly userxattr: boolean,
    log: Logger,
  ) {
    this.log = log;
  }

  /**
   * Checks the backing filesystem (overlay mountable, d_type), creates the
   * home and `l/`, and sweeps what a crash left behind.
   */
  static async init(home: string, opts: Overlay2Options = {}): Promise<Overlay2Driver> {
    const log = (opts.logger ?? nullLogger).with({ 'storage-driver': DRIVER_NAME });
    for (const o of opts.options ?? []) throw invalidArgument(`overlay2: unknown option ${o.split('=')[0]}`);
    home = path.resolve(home);
    const testDir = fs.existsSync(home) ? home : path.dirname(home);
    fs.mkdirSync(testDir, { recursive: true });
    try {
      checkOverlaySupport(testDir);
    } catch (e) {
      throw internal(`driver not supported: overlay2: cannot mount overlay on ${testDir}`, e);
    }
    const backingFs = backingFsName(testDir);
    const dType = supportsDType(testDir);
    if (!dType) {
      throw internal(
        `overlay2: the backing ${backingFs} filesystem is formatted without d_type support, which leads to incorrect behavior. ` +
          'Reformat the filesystem with ftype=1 to enable d_type support. Running without d_type is not supported.',
      );
    }
    fs.mkdirSync(home, { recursive: true, mode: 0o710 });
    fs.chmodSync(home, 0o710);
    fs.mkdirSync(path.join(home, LINK_DIR), { recursive: true, mode: 0o700 });
    const userxattr = runningInUserNS();
    const mountPrefix = `${overlayHasIndexParam() ? 'index=off,' : ''}${userxattr ? 'userxattr,' : ''}`;
    const d = new Overlay2Driver(home, backingFs, dType, nativeDiffSupported(), mountPrefix, userxattr, log);
    await d.sweep();
    return d;
  }

  /** Removes `.tmp-*` build dirs, `*-removing` dirs and dangling l/ links. */
  private async sweep(): Promise<void> {
    for (const n of await fsp.readdir(this.home)) {
      if (n.startsWith(TEMP_PREFIX) || n.endsWith(REMOVING_SUFFIX)) {
        await this.unmountBelow(path.join(this.home, n));
        await fsp.rm(path.join(this.home, n), { recursive: true, force: true });
        this.log.info('removed leftover from an interrupted operation', { dir: n });
      }
    }
    // half-written metadata files (`.tmp-link-*`, `.tmp-committed-*` …) inside layer dirs
    for (const id of await this.list()) {
      for (const n of await fsp.readdir(path.join(this.home, id))) {
        if (!n.startsWith(TEMP_PREFIX)) continue;
        await fsp.rm(path.join(this.home, id, n), { force: true });
        this.log.info('removed leftover temp file', { id, file: n });
      }
    }
    const linkDir = path.join(this.home, LINK_DIR);
    for (const n of await fsp.readdir(linkDir)) {
      const p = path.join(linkDir, n);
      if (n.startsWith(TEMP_PREFIX)) {
        await fsp.rm(p, { force: true });
        continue;
      }
      try {
        await fsp.stat(p);
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT') throw e;
        await fsp.rm(p, { force: true });
        this.log.info('removed dangling layer link', { link: n });
      }
    }
  }

  private async unmountBelow(dir: string): Promise<void> {
    for (const mp of mountsUnder(dir)) {
      try {
        native.umount2(mp, MNT_DETACH);
      } catch (e) {
        this.log.warn('failed to unmount', { path: mp, error: String(e) });
      }
    }
  }

  dir(id: string): string {
    if (!ID_RE.test(id) || id === LINK_DIR || id.endsWith(REMOVING_SUFFIX)) {
      throw invalidArgument(`overlay2: invalid layer id ${JSON.stringify(id)}`);
    }
    return path.join(this.home, id);
  }

  diffPath(id: string): string {
    return path.join(this.dir(id), DIFF_DIR);
  }

  exists(id: string): boolean {
    try {
      return fs.statSync(this.dir(id)).isDirectory();
    } catch {
      return false;
    }
  }

  async isComplete(id: string, hasParent: boolean): Promise<boolean> {
    try {
      const dir = this.dir(id);
      if (!fs.statSync(path.join(dir, DIFF_DIR)).isDirectory()) return false;
      const link = await fsp.readFile(path.join(dir, LINK_FILE), 'utf8');
      if (!LINK_ID_RE.test(link) || !fs.existsSync(path.join(this.home, LINK_DIR, link))) return false;
      if (!hasParent) return true;
      const lower = await fsp.readFile(path.join(dir, LOWER_FILE), 'utf8');
      return lower !== '' && lower.split(':').every((l) => fs.existsSync(path.join(this.home, l)));
    } catch {
      return false;
    }
  }

  async create(id: string, parent?: string, opts?: CreateOpts): Promise<void> {
    if (opts?.storageOpt && 'size' in opts.storageOpt) {
      throw invalidArgument('--storage-opt size is only supported for ReadWrite Layers');
    }
    await this.createLayer(id, parent, opts);
  }

  async createReadWrite(id: string, parent?: string, opts?: CreateOpts): Promise<void> {
    if (opts?.storageOpt && Object.keys(opts.storageOpt).length > 0) {
      throw invalidArgument("--storage-opt is supported only for overlay over xfs with 'pquota' mount option");
    }
    await this.createLayer(id, parent, opts);
  }

  private async createLayer(id: string, parent: string | undefined, opts?: CreateOpts): Promise<void> {
    const dir = this.dir(id);
    const durable = opts?.durable !== false;
    await this.locks.run(id, async () => {
      // Synchronous calls: a handful of small metadata operations, each a few
      // microseconds, where a thread-pool round trip per call cost milliseconds
      // on the `docker run` path (RW layers are created twice per container).
      if (fs.existsSync(dir)) throw alreadyExists(`overlay2: layer ${id} already exists`);
      // Compute the lower chain first: fails early for a missing parent or max depth.
      const lower = parent ? this.lowerForSync(parent) : undefined;
      const tmp = path.join(this.home, `${TEMP_PREFIX}create-${id}-${randomBytes(4).toString('hex')}`);
      fs.mkdirSync(tmp, { mode: 0o710 });
      try {
        fs.chmodSync(tmp, 0o710);
        fs.mkdirSync(path.join(tmp, DIFF_DIR), { mode: 0o755 });
        fs.chmodSync(path.join(tmp, DIFF_DIR), 0o755);
        const lid = this.makeLink(id, durable);
        // files inside tmp need no atomic replace: the rename of tmp publishes them
        writeNew(path.join(tmp, LINK_FILE), lid, 0o644, durable);
        if (parent !== undefined && lower !== undefined) {
          fs.mkdirSync(path.join(tmp, WORK_DIR), { mode: 0o700 });
          // `committed` marks the parent as having children; written once
          if (!fs.existsSync(path.join(this.dir(parent), COMMITTED_FILE)))
            atomicWriteFileSync(path.join(this.dir(parent), COMMITTED_FILE), '', {
              mode: 0o600,
              ...(durable ? {} : { sync: false, syncDir: false }),
            });
          writeNew(path.join(tmp, LOWER_FILE), lower, 0o644, durable);
        }
        if (durable) fsyncDirSync(tmp);
        fs.renameSync(tmp, dir);
        if (durable) fsyncDirSync(this.home);
      } catch (e) {
        fs.rmSync(tmp, { recursive: true, force: true });
        // the l/ link (if made) dangles now; remove it right away
        await this.removeDanglingLinkFor(id);
        throw e;
      }
    });
  }

  /**
   * Makes `parent` the parent of `id`, a layer created without one: what
   * create(id, parent) would have written (work/, lower, and `committed` on the
   * parent). A layer's diff never depends on its parent, so extraction can
   * happen first — several layers at once, out of order — and the chain is
   * attached afterwards (staged registration in the layer store).
   */
  async attachParent(id: string, parent: string): Promise<void> {
    const dir = this.dir(id);
    await this.locks.run(id, async () => {
      if (!fs.existsSync(dir)) throw notFound(`overlay2: layer ${id} does not exist`);
      if (fs.existsSync(path.join(dir, LOWER_FILE))) throw alreadyExists(`overlay2: layer ${id} already has a parent`);
      const lower = this.lowerForSync(parent);
      await fsp.mkdir(path.join(dir, WORK_DIR), { mode: 0o700 }).catch((e) => {
        if (errnoCode(e) !== 'EEXIST') throw e;
      });
      await atomicWriteFile(path.join(this.dir(parent), COMMITTED_FILE), '', { mode: 0o600 });
      await atomicWriteFile(path.join(dir, LOWER_FILE), lower, { mode: 0o644 });
    });
  }

  /** Creates l/<new short id> → ../<id>/diff (dangling until the layer dir is renamed into place). */
  private makeLink(id: string, durable = true): string {
    for (let attempt = 0; ; attempt++) {
      const lid = generateLinkId();
      try {
        fs.symlinkSync(path.join('..', id, DIFF_DIR), path.join(this.home, LINK_DIR, lid));
        if (durable) fsyncDirSync(path.join(this.home, LINK_DIR));
        return lid;
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST' || attempt > 8) throw e;
      }
    }
  }

  private async removeDanglingLinkFor(id: string): Promise<void> {
    const want = path.join('..', id, DIFF_DIR);
    const linkDir = path.join(this.home, LINK_DIR);
    for (const n of await fsp.readdir(linkDir)) {
      try {
        if ((await fsp.readlink(path.join(linkDir, n))) === want && !fs.existsSync(path.join(linkDir, n))) {
          await fsp.rm(path.join(linkDir, n), { force: true });
        }
      } catch {
        // not a link or gone
      }
    }
  }

  /** The `lower` content for a child of `parent` (moby getLower). */
  private lowerForSync(parent: string): string {
    const parentDir = this.dir(parent);
    let link: string;
    try {
      link = fs.readFileSync(path.join(parentDir, LINK_FILE), 'utf8');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw notFound(`overlay2: parent layer ${parent} does not exist`, e);
      throw e;
    }
    if (!LINK_ID_RE.test(link))
      throw internal(`overlay2: corrupt link file of layer ${parent}: ${JSON.stringify(link)}`);
    const lowers = [path.join(LINK_DIR, link)];
    try {
      const parentLower = fs.readFileSync(path.join(parentDir, LOWER_FILE), 'utf8');
      if (parentLower !== '') lowers.push(...parentLower.split(':'));
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
    if (lowers.length > MAX_DEPTH) throw invalidArgument('max depth exceeded');
    return lowers.join(':');
  }

  async soleSource(id: string, rel: string): Promise<LayeredSource | null> {
    const dirs = [path.join(this.dir(id), DIFF_DIR), ...(await this.lowerDirs(id))];
    return soleSourceIn(dirs, rel);
  }

  /** Absolute lower diff dirs of `id`, uppermost first (moby getLowerDirs). */
  async lowerDirs(id: string): Promise<string[]> {
    let lower: string;
    try {
      lower = await fsp.readFile(path.join(this.dir(id), LOWER_FILE), 'utf8');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return [];
      throw e;
    }
    const out: string[] = [];
    for (const s of lower.split(':')) {
      const target = await fsp.readlink(path.join(this.home, s));
      out.push(path.resolve(this.home, LINK_DIR, target));
    }
    return out;
  }

  async remove(id: string): Promise<void> {
    if (!id) throw invalidArgument('refusing to remove the directories: id is empty');
    const dir = this.dir(id);
    await this.locks.run(id, async () => {
      if (!fs.existsSync(dir)) return;
      // Only a layer whose merged/ exists can still be mounted (put() removes
      // it): spares a read of /proc/self/mountinfo, long with many containers.
      if (fs.existsSync(path.join(dir, MERGED_DIR))) await this.unmountBelow(dir);
      this.mountCounts.delete(id);
      let lid = '';
      try {
        lid = await fsp.readFile(path.join(dir, LINK_FILE), 'utf8');
      } catch {
        // no link: nothing to unlink
      }
      const doomed = `${dir}-${randomBytes(4).toString('hex')}${REMOVING_SUFFIX}`;
      await fsp.rename(dir, doomed);
      await fsyncDir(this.home);
      if (LINK_ID_RE.test(lid)) {
        await fsp.rm(path.join(this.home, LINK_DIR, lid), { force: true });
      } else if (lid !== '') {
        this.log.error('refusing to remove invalid link for layer', { id });
      }
      await fsp.rm(doomed, { recursive: true, force: true });
    });
  }

  async get(id: string, mountLabel?: string): Promise<string> {
    const dir = this.dir(id);
    return this.locks.run(id, async () => {
      if (!fs.existsSync(dir)) throw notFound(`overlay2: layer ${id} does not exist`);
      const diffDir = path.join(dir, DIFF_DIR);
      let lowers: string;
      try {
        lowers = await fsp.readFile(path.join(dir, LOWER_FILE), 'utf8');
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') return diffDir; // base layer: nothing to mount
        throw e;
      }
      const merged = path.join(dir, MERGED_DIR);
      const count = this.currentCount(id, merged) + 1;
      this.mountCounts.set(id, count);
      if (count > 1) return merged;
      try {
        await this.mountOverlay(id, dir, lowers, mountLabel);
      } catch (e) {
        this.mountCounts.delete(id);
        await fsp.rmdir(merged).catch(() => {});
        throw e;
      }
      return merged;
    });
  }

  private currentCount(id: string, merged: string): number {
    const c = this.mountCounts.get(id);
    if (c !== undefined) return c;
    // Mounted by an earlier run of the daemon: count that as one reference (moby mountref).
    return isOverlayMount(merged) ? 1 : 0;
  }

  private async mountOverlay(id: string, dir: string, lowers: string, mountLabel?: string): Promise<void> {
    const diffDir = path.join(dir, DIFF_DIR);
    const workDir = path.join(dir, WORK_DIR);
    const merged = path.join(dir, MERGED_DIR);
    const split = lowers.split(':');
    if (split.length > MAX_DEPTH) throw invalidArgument('max depth exceeded');
    const absLowers = split.map((s) => path.join(this.home, s)).join(':');
    const readonly = fs.existsSync(path.join(dir, COMMITTED_FILE));
    const label = (opts: string) => (mountLabel ? `${opts},context=${JSON.stringify(mountLabel)}` : opts);
    let data = label(
      readonly
        ? `${this.mountPrefix}lowerdir=${diffDir}:${absLowers}`
        : `${this.mountPrefix}lowerdir=${absLowers},upperdir=${diffDir},workdir=${workDir}`,
    );
    await fsp.mkdir(merged, { mode: 0o700 }).catch((e) => {
      if (errnoCode(e) !== 'EEXIST') throw e;
    });
    if (data.length <= PAGE_SIZE - 1) {
      try {
        native.mount('overlay', merged, 'overlay', 0, data);
      } catch (e) {
        throw internal(`error creating overlay mount to ${merged}: ${(e as Error).message}`, e);
      }
      return;
    }
    // Too long for one page: use paths relative to the home (moby mountFrom).
    data = label(
      readonly
        ? `${this.mountPrefix}lowerdir=${path.join(id, DIFF_DIR)}:${lowers}`
        : `${this.mountPrefix}lowerdir=${lowers},upperdir=${path.join(id, DIFF_DIR)},workdir=${path.join(id, WORK_DIR)}`,
    );
    if (data.length > PAGE_SIZE - 1) throw invalidArgument(`cannot mount layer, mount label too large ${data.length}`);
    const cwd = process.cwd();
    // Synchronous chdir → mount → chdir: no other JavaScript runs in between.
    process.chdir(this.home);
    try {
      native.mount('overlay', path.join(id, MERGED_DIR), 'overlay', 0, data);
    } catch (e) {
      throw internal(`error creating overlay mount to ${merged}: ${(e as Error).message}`, e);
    } finally {
      process.chdir(cwd);
    }
  }

  async put(id: string): Promise<void> {
    const dir = this.dir(id);
    await this.locks.run(id, async () => {
      if (!fs.existsSync(path.join(dir, LOWER_FILE))) return; // never mounted
      const merged = path.join(dir, MERGED_DIR);
      const count = this.currentCount(id, merged);
      if (count <= 0) return;
      if (count > 1) {
        this.mountCounts.set(id, count - 1);
        return;
      }
      this.mountCounts.delete(id);
      try {
        // off the event loop: unmounting an overlay syncs its upper file system
        await native.umount2Async(merged, MNT_DETACH);
      } catch (e) {
        this.log.debug('failed to unmount overlay', { id, path: merged, error: String(e) });
      }
      await fsp.rmdir(merged).catch(() => {});
    });
  }

  /** Current mount reference count of a layer (tests, diagnostics). */
  mountCount(id: string): number {
    return this.mountCounts.get(id) ?? 0;
  }

  async applyDiff(
    id: string,
    _parent: string | undefined,
    tar: Readable,
    opts: ApplyDiffOptions = {},
  ): Promise<ApplyDiffResult> {
    const diffDir = this.diffPath(id);
    if (!fs.existsSync(diffDir)) throw notFound(`overlay2: layer ${id} does not exist`);
    const base = {
      whiteouts: 'overlay' as const,
      ...(opts.tarSplitPath !== undefined ? { tarSplitPath: opts.tarSplitPath } : {}),
      ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
    };
    if (opts.offThread) {
      return applyLayerOffThread(tar, diffDir, {
        ...base,
        ...(opts.compression ? { compression: opts.compression } : {}),
        ...(opts.transferChunks ? { transferChunks: true } : {}),
      });
    }
    const dec = opts.compression ? decompressor(opts.compression) : undefined;
    if (dec) pipeline(tar, dec, () => {}); // a stream error reaches applyLayer through `dec`
    return applyLayer(dec ?? tar, diffDir, base);
  }

  /** The layer's own files as a tar; overlay whiteouts become `.wh.` entries (moby native diff). */
  diff(id: string, _parent?: string): Readable {
    return exportDiff(this.diffPath(id), { whiteouts: 'overlay' });
  }

  async changes(id: string, _parent?: string): Promise<Change[]> {
    return changes(this.diffPath(id), await this.lowerDirs(id));
  }

  async diffSize(id: string, _parent?: string): Promise<number> {
    return directorySize(this.diffPath(id));
  }

  status(): Array<[string, string]> {
    return [
      ['Backing Filesystem', this.backingFs],
      ['Supports d_type', String(this.dType)],
      ['Native Overlay Diff', String(this.nativeDiff)],
      ['userxattr', String(this.userxattr)],
    ];
  }

  async metadata(id: string): Promise<Record<string, string>> {
    const dir = this.dir(id);
    if (!fs.existsSync(dir)) throw notFound(`overlay2: layer ${id} does not exist`);
    const md: Record<string, string> = {};
    const lowers = await this.lowerDirs(id);
    if (lowers.length > 0) md.LowerDir = lowers.join(':');
    md.MergedDir = path.join(dir, MERGED_DIR);
    md.UpperDir = path.join(dir, DIFF_DIR);
    md.WorkDir = path.join(dir, WORK_DIR);
    return md;
  }

  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const e of await fsp.readdir(this.home, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name === LINK_DIR) continue;
      if (e.name.startsWith(TEMP_PREFIX) || e.name.endsWith(REMOVING_SUFFIX)) continue;
      out.push(e.name);
    }
    return out;
  }

  async cleanup(): Promise<void> {
    await this.unmountBelow(this.home);
    for (const id of this.mountCounts.keys()) {
      await fsp.rmdir(path.join(this.home, id, MERGED_DIR)).catch(() => {});
    }
    this.mountCounts.clear();
  }
}

/** Writes a new file (O_EXCL), fsynced when `durable`. */
function writeNew(file: string, data: string, mode: number, durable: boolean): void {
  const fd = fs.openSync(file, 'wx', mode);
  try {
    fs.writeSync(fd, data);
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const OPAQUE_XATTR = 'trusted.overlay.opaque';

/**
 * overlayfs lookup of `rel` over diff dirs (uppermost first), reduced to the
 * cases a copy needs no mount for: nowhere on the path in any layer, or a
 * directory in exactly one layer with no other layer holding the full path.
 * Any non-directory on the way (a whiteout, a symlink, a file) → null. An
 * opaque directory on the path hides the layers below it.
 */
export function soleSourceIn(dirs: string[], rel: string): LayeredSource | null {
  const parts = rel.split('/').filter((x) => x && x !== '.');
  if (parts.some((x) => x === '..')) return null;
  let holder: string | undefined;
  for (const dir of dirs) {
    let p = dir;
    let full = true;
    let hidesBelow = false;
    for (const part of parts) {
      p = path.join(p, part);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        full = false;
        break;
      }
      if (!st.isDirectory()) return null;
      if (native.lgetxattr(p, OPAQUE_XATTR)?.toString() === 'y') hidesBelow = true;
    }
    if (full) {
      if (holder !== undefined) return null;
      holder = p;
    }
    if (hidesBelow) break;
  }
  return holder === undefined ? { kind: 'absent' } : { kind: 'dir', path: holder };
}
