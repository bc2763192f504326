// Atomic on-disk writes: temp file in the same directory, fsync, rename,
// fsync the directory. A crash leaves either the old file or the new one, plus
// at worst a `.tmp-*` file that sweepTempFiles() removes at the next start.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export const TEMP_PREFIX = '.tmp-';

function tempNameFor(target: string): string {
  return path.join(path.dirname(target), `${TEMP_PREFIX}${path.basename(target)}-${randomBytes(6).toString('hex')}`);
}

/** fsync a directory so that renames and creations in it are durable. */
export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface AtomicWriteOptions {
  mode?: number;
  /** fsync the parent directory after the rename (default true). */
  syncDir?: boolean;
  /**
   * fsync the file before the rename (default true). false: atomic against
   * concurrent readers only, for files a crash may lose (swept or rebuilt at start).
   */
  sync?: boolean;
}

/** Atomically replaces `target` with `data`. */
export async function atomicWriteFile(
  target: string,
  data: Buffer | string,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const tmp = tempNameFor(target);
  const fh = await fsp.open(tmp, 'wx', opts.mode ?? 0o644);
  try {
    await fh.writeFile(data);
    if (opts.sync !== false) await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await fsp.rename(tmp, target);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  if (opts.syncDir !== false) await fsyncDir(path.dirname(target));
}

/** Synchronous twin of atomicWriteFile, for small metadata on hot paths. */
export function atomicWriteFileSync(target: string, data: Buffer | string, opts: AtomicWriteOptions = {}): void {
  const tmp = tempNameFor(target);
  const fd = fs.openSync(tmp, 'wx', opts.mode ?? 0o644);
  try {
    fs.writeFileSync(fd, data);
    if (opts.sync !== false) fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed above
    }
  }
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  if (opts.syncDir !== false) fsyncDirSync(path.dirname(target));
}

/**
 * A group of files written into a private temp directory and moved into place
 * with one rename (moby's atomicwriter.WriteSet, used for layerdb entries).
 */
export class WriteSet {
  /** false: nothing is fsynced (a set a crash may lose; its owner sweeps what is left at start). */
  durable = true;
  private constructor(readonly root: string) {}

  static async create(tmpDir: string, prefix = 'write-set-'): Promise<WriteSet> {
    await fsp.mkdir(tmpDir, { recursive: true });
    return new WriteSet(await fsp.mkdtemp(path.join(tmpDir, prefix)));
  }

  static createSync(tmpDir: string, prefix = 'write-set-'): WriteSet {
    fs.mkdirSync(tmpDir, { recursive: true });
    return new WriteSet(fs.mkdtempSync(path.join(tmpDir, prefix)));
  }

  /** Writes one file of the set and fsyncs it. */
  async writeFile(name: string, data: Buffer | string, mode = 0o644): Promise<void> {
    const fh = await fsp.open(path.join(this.root, name), 'wx', mode);
    try {
      await fh.writeFile(data);
      if (this.durable) await fh.sync();
    } finally {
      await fh.close();
    }
  }

  writeFileSync(name: string, data: Buffer | string, mode = 0o644): void {
    const fd = fs.openSync(path.join(this.root, name), 'wx', mode);
    try {
      fs.writeFileSync(fd, data);
      if (this.durable) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** A path inside the set, for writers that stream (they must fsync themselves). */
  pathOf(name: string): string {
    return path.join(this.root, name);
  }

  /**
   * Moves the set to `target` (which must not exist) in one rename and makes
   * that durable. If the target already exists, throws with code EEXIST/ENOTEMPTY
   * and leaves the set in place for cancel().
   */
  async commit(target: string): Promise<void> {
    if (this.durable) await fsyncDir(this.root);
    await fsp.rename(this.root, target);
    if (this.durable) await fsyncDir(path.dirname(target));
  }

  commitSync(target: string): void {
    if (this.durable) fsyncDirSync(this.root);
    fs.renameSync(this.root, target);
    if (this.durable) fsyncDirSync(path.dirname(target));
  }

  cancelSync(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  async cancel(): Promise<void> {
    await fsp.rm(this.root, { recursive: true, force: true });
  }
}

export const REMOVING_SUFFIX = '-removing';

/**
 * Deletes a directory by first renaming it to `<dir>-<rand>-removing`, so a
 * crash mid-delete leaves an obviously orphaned name that the next start sweeps,
 * never a half-deleted entry under its real name.
 */
export async function removeViaRename(dir: string): Promise<void> {
  const doomed = `${dir}-${randomBytes(4).toString('hex')}${REMOVING_SUFFIX}`;
  try {
    await fsp.rename(dir, doomed);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  await fsyncDir(path.dirname(dir));
  await fsp.rm(doomed, { recursive: true, force: true });
}

/** Removes `.tmp-*` files and `*-removing` entries left in `dir` by a crash. */
export async function sweepLeftovers(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const swept: string[] = [];
  for (const n of names) {
    if (n.startsWith(TEMP_PREFIX) || n.endsWith(REMOVING_SUFFIX)) {
      await fsp.rm(path.join(dir, n), { recursive: true, force: true });
      swept.push(n);
    }
  }
  return swept;
}
