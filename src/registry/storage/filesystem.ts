// The filesystem storage driver: driver paths map under `rootdirectory`,
// exactly as distribution's filesystem driver does, so the two can serve the
// same tree. putContent is temp file + fsync + rename + fsync(dir) (and fsync of
// the parents of any directory it had to create); with `sync: false` (link
// files distribution never syncs either) it is temp file + rename.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { errnoCode } from '../../errors/index.js';
import { TEMP_PREFIX } from '../../fsutil/index.js';
import {
  checkDriverPath,
  type FileInfo,
  type FileVersion,
  type FileWriter,
  InvalidOffsetError,
  PathNotFoundError,
  type StorageDriver,
  type VersionedFiles,
  type WalkResult,
} from './driver.js';

let tmpSeq = 0;

/** Read buffers for copyTo, reused across responses (a few MiB, never freed). */
const COPY_CHUNK = 1024 * 1024;
/** Buffers per response: 2 measured best (1 read ahead of the socket); 3 and 4 were slower. */
const COPY_DEPTH = 2;
const freeBuffers: Buffer[] = [];
const settle = async (w: { done: Promise<void>; buf: Buffer }) => {
  await w.done;
  return w.buf;
};
const takeBuffer = () => freeBuffers.pop() ?? Buffer.allocUnsafeSlow(COPY_CHUNK);
const giveBuffer = (b: Buffer) => {
  if (freeBuffers.length < 32) freeBuffers.push(b);
};

export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  constructor(readonly rootDirectory: string) {}

  private full(p: string): string {
    checkDriverPath(p);
    return path.join(this.rootDirectory, p);
  }

  async getContent(p: string): Promise<Buffer> {
    try {
      return await fsp.readFile(this.full(p));
    } catch (e) {
      throw mapErr(e, p);
    }
  }

  async putContent(p: string, content: Buffer | string, opts: { sync?: boolean } = {}): Promise<void> {
    const f = this.full(p);
    const dir = path.dirname(f);
    const tmp = `${dir}/${TEMP_PREFIX}${process.pid}-${(tmpSeq++).toString(36)}`;
    const durable = opts.sync !== false;
    // Write the temp file; create the directory only when it is missing (fewer syscalls).
    let created: string | undefined;
    try {
      await writeTemp(tmp, content, durable);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
      created = await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
      await writeTemp(tmp, content, durable);
    }
    try {
      await new Promise<void>((res, rej) => fs.rename(tmp, f, (e) => (e ? rej(e) : res())));
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    if (!durable) return;
    // The new name is durable once its directory is synced, and every directory this call
    // created is durable once its parent is.
    const dirs = [dir];
    if (created !== undefined) {
      let d = dir;
      while (d !== created && d.length > created.length) {
        d = path.dirname(d);
        dirs.push(d);
      }
      dirs.push(path.dirname(created));
    }
    await Promise.all(dirs.map((d) => syncDir(d)));
  }

  /** Link files and blob existence: one stat validates a cached read (see LinkCache). */
  readonly versioned: VersionedFiles = {
    locate: (p) => this.full(p),
    versionSync: (f) => {
      let st: fs.Stats | undefined;
      try {
        st = fs.statSync(f, { throwIfNoEntry: false });
      } catch (e) {
        if (errnoCode(e) === 'ENOTDIR') return null;
        throw e;
      }
      return st?.isFile() ? versionOf(st) : null;
    },
    readVersioned: async (f) => {
      let fh: fsp.FileHandle;
      try {
        fh = await fsp.open(f, 'r');
      } catch (e) {
        if (isMissing(e)) return undefined;
        throw e;
      }
      try {
        const st = await fh.stat();
        if (!st.isFile()) return undefined;
        const data = Buffer.allocUnsafe(st.size);
        let off = 0;
        while (off < data.length) {
          const { bytesRead } = await fh.read(data, off, data.length - off, off);
          if (bytesRead === 0) break;
          off += bytesRead;
        }
        return { data: off === data.length ? data : data.subarray(0, off), version: versionOf(st) };
      } finally {
        await fh.close();
      }
    },
  };

  async reader(p: string, offset = 0, length?: number): Promise<Readable> {
    const f = this.full(p);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(f, 'r');
    } catch (e) {
      throw mapErr(e, p);
    }
    const st = await fh.stat();
    if (offset < 0 || offset > st.size) {
      await fh.close();
      throw new InvalidOffsetError(p, offset);
    }
    if (length === 0 || offset === st.size) {
      await fh.close();
      const { Readable } = await import('node:stream');
      return Readable.from([]);
    }
    const end = length === undefined ? undefined : offset + length - 1;
    return fh.createReadStream({ start: offset, ...(end !== undefined ? { end } : {}), highWaterMark: 1024 * 1024 });
  }

  async copyTo(p: string, offset: number, length: number, out: NodeJS.WritableStream): Promise<void> {
    const f = this.full(p);
    let fd: number;
    try {
      fd = await new Promise<number>((res, rej) => fs.open(f, 'r', (e, fd) => (e ? rej(e) : res(fd))));
    } catch (e) {
      throw mapErr(e, p);
    }
    // COPY_DEPTH buffers per response: reads run ahead of the socket; a buffer is reused only
    // after the socket has taken its bytes (the write callback).
    const free: Buffer[] = [];
    for (let i = 0; i < COPY_DEPTH; i++) free.push(takeBuffer());
    const writes: Array<{ done: Promise<void>; buf: Buffer }> = [];
    let closed: Error | undefined;
    const failers = new Set<(e: Error) => void>();
    // A destroyed response may never call a write back: 'close' settles the waits instead.
    const onClose = () => {
      closed ??= new Error('client went away');
      for (const f of failers) f(closed);
    };
    out.on('close', onClose);
    let clean = false;
    try {
      let pos = offset;
      let left = length;
      while (left > 0) {
        if (free.length === 0) free.push(await settle(writes.shift()!));
        const buf = free.pop()!;
        const want = Math.min(buf.length, left);
        let n: number;
        try {
          n = await new Promise<number>((res, rej) => fs.read(fd, buf, 0, want, pos, (e, n) => (e ? rej(e) : res(n))));
        } finally {
          free.push(buf); // not yet handed to the socket
        }
        if (n === 0) throw new Error(`${p}: file shorter than expected`);
        if (closed) throw closed;
        free.pop();
        pos += n;
        left -= n;
        const done = new Promise<void>((res, rej) => {
          const fail = (e: Error) => rej(e);
          failers.add(fail);
          out.write(n === buf.length ? buf : buf.subarray(0, n), (e?: Error | null) => {
            failers.delete(fail);
            if (e) rej(e);
            else res();
          });
        });
        done.catch(() => {}); // awaited later; never an unhandled rejection meanwhile
        writes.push({ done, buf });
      }
      while (writes.length) free.push(await settle(writes.shift()!));
      clean = true;
    } finally {
      out.removeListener('close', onClose);
      fs.close(fd, () => {});
      // Buffers the socket may still hold are left to the garbage collector.
      for (const b of free) giveBuffer(b);
      if (clean) for (const w of writes) giveBuffer(w.buf);
    }
  }

  async writer(p: string, append: boolean): Promise<FileWriter> {
    const f = this.full(p);
    await fsp.mkdir(path.dirname(f), { recursive: true, mode: 0o755 });
    const fh = await fsp.open(f, append ? 'a' : 'w', 0o644);
    const size = append ? (await fh.stat()).size : 0;
    return new FsWriter(fh, f, size);
  }

  async stat(p: string): Promise<FileInfo> {
    try {
      const st = await fsp.stat(this.full(p));
      return { path: p, size: st.isDirectory() ? 0 : st.size, modTime: st.mtime, isDir: st.isDirectory() };
    } catch (e) {
      throw mapErr(e, p);
    }
  }

  async list(p: string): Promise<string[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.full(p));
    } catch (e) {
      throw mapErr(e, p);
    }
    const base = p === '/' ? '' : p;
    return names
      .filter((n) => !n.startsWith(TEMP_PREFIX))
      .sort()
      .map((n) => `${base}/${n}`);
  }

  async move(source: string, dest: string): Promise<void> {
    const s = this.full(source);
    const d = this.full(dest);
    await fsp.mkdir(path.dirname(d), { recursive: true, mode: 0o755 });
    try {
      await fsp.rename(s, d);
    } catch (e) {
      throw mapErr(e, source);
    }
  }

  async delete(p: string): Promise<void> {
    const f = this.full(p);
    try {
      await fsp.lstat(f);
    } catch (e) {
      throw mapErr(e, p);
    }
    await fsp.rm(f, { recursive: true, force: true });
  }

  async walk(p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> {
    const stopped = await this.walkInner(p, fn);
    void stopped;
  }

  private async walkInner(p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<boolean> {
    const children = await this.list(p);
    for (const c of children) {
      let fi: FileInfo;
      try {
        fi = await this.stat(c);
      } catch (e) {
        if (e instanceof PathNotFoundError) continue; // removed while walking
        throw e;
      }
      const r = await fn(fi);
      if (r === 'stop') return true;
      if (fi.isDir && r !== 'skip-dir') {
        try {
          if (await this.walkInner(c, fn)) return true;
        } catch (e) {
          if (!(e instanceof PathNotFoundError)) throw e;
        }
      }
    }
    return false;
  }
}

class FsWriter implements FileWriter {
  private done = false;
  constructor(
    private readonly fh: fsp.FileHandle,
    private readonly file: string,
    public size: number,
  ) {}
  async write(chunk: Buffer): Promise<void> {
    if (this.done) throw new Error('writer already closed');
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off);
      off += bytesWritten;
      this.size += bytesWritten;
    }
  }
  async writev(chunks: Buffer[]): Promise<void> {
    if (this.done) throw new Error('writer already closed');
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const { bytesWritten } = await this.fh.writev(chunks);
    this.size += bytesWritten;
    if (bytesWritten < total) {
      // a short write (rare on a regular file): the rest, one chunk at a time
      let skip = bytesWritten;
      for (const c of chunks) {
        if (skip >= c.length) skip -= c.length;
        else {
          await this.write(skip ? c.subarray(skip) : c);
          skip = 0;
        }
      }
    }
  }
  async commit(opts: { sync?: boolean } = {}): Promise<void> {
    if (this.done) return;
    this.done = true;
    try {
      if (opts.sync !== false) await this.fh.sync();
    } finally {
      await this.fh.close();
    }
  }
  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.fh.close();
  }
  async cancel(): Promise<void> {
    await this.close();
    await fsp.rm(this.file, { force: true });
  }
}

// Small-file writes use the callback API (lighter than FileHandle promises: a tag PUT is
// a dozen of them) and close without waiting: nothing after a write needs the fd closed.
const openP = (f: string, flags: string | number, mode?: number) =>
  new Promise<number>((res, rej) => fs.open(f, flags, mode, (e, fd) => (e ? rej(e) : res(fd))));
const writeP = (fd: number, b: Buffer, off: number) =>
  new Promise<number>((res, rej) => fs.write(fd, b, off, b.length - off, null, (e, n) => (e ? rej(e) : res(n))));
const fsyncP = (fd: number) => new Promise<void>((res, rej) => fs.fsync(fd, (e) => (e ? rej(e) : res())));
const closeQuiet = (fd: number) => fs.close(fd, () => {});

async function writeTemp(tmp: string, content: Buffer | string, durable: boolean): Promise<void> {
  const fd = await openP(tmp, 'wx', 0o644);
  try {
    const b = typeof content === 'string' ? Buffer.from(content) : content;
    for (let off = 0; off < b.length; ) off += await writeP(fd, b, off);
    if (durable) await fsyncP(fd);
  } catch (e) {
    closeQuiet(fd);
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  closeQuiet(fd);
}

/** fsync a directory so that names created or renamed in it are durable. */
async function syncDir(dir: string): Promise<void> {
  const fd = await openP(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fsyncP(fd);
  } finally {
    closeQuiet(fd);
  }
}

const versionOf = (st: fs.Stats): FileVersion => ({
  ino: st.ino,
  size: st.size,
  mtimeMs: st.mtimeMs,
  ctimeMs: st.ctimeMs,
});

const isMissing = (e: unknown) => {
  const code = errnoCode(e);
  return code === 'ENOENT' || code === 'ENOTDIR';
};

function mapErr(e: unknown, p: string): unknown {
  const code = errnoCode(e);
  if (code === 'ENOENT' || code === 'ENOTDIR') return new PathNotFoundError(p);
  return e;
}

/** For tests and tools: does a real file exist under the root? */
export function existsSync(root: string, p: string): boolean {
  return fs.existsSync(path.join(root, checkDriverPath(p)));
}
