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
import { fsyncDir, TEMP_PREFIX } from '../../fsutil/index.js';
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
const freeBuffers: Buffer[] = [];
const takeBuffer = () => freeBuffers.pop() ?? Buffer.allocUnsafeSlow(COPY_CHUNK);
const giveBuffer = (b: Buffer) => {
  if (freeBuffers.length < 16) freeBuffers.push(b);
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
      await fsp.rename(tmp, f);
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
    await Promise.all(dirs.map((d) => fsyncDir(d)));
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
    // Two buffers: the next read overlaps the previous write; a buffer is reused only after
    // the socket has taken its bytes (the write callback).
    let a = takeBuffer();
    let b = takeBuffer();
    let closed: Error | undefined;
    let failPending: ((e: Error) => void) | undefined;
    // A destroyed response may never call a write back: 'close' settles the wait instead.
    const onClose = () => {
      closed ??= new Error('client went away');
      failPending?.(closed);
    };
    out.on('close', onClose);
    try {
      let pos = offset;
      let left = length;
      let pending: Promise<void> | undefined;
      while (left > 0) {
        const want = Math.min(a.length, left);
        const buf = a;
        const n = await new Promise<number>((res, rej) =>
          fs.read(fd, buf, 0, want, pos, (e, n) => (e ? rej(e) : res(n))),
        );
        if (n === 0) throw new Error(`${p}: file shorter than expected`);
        pos += n;
        left -= n;
        if (pending) await pending;
        if (closed) throw closed;
        pending = new Promise<void>((res, rej) => {
          failPending = rej;
          out.write(n === buf.length ? buf : buf.subarray(0, n), (e?: Error | null) => (e ? rej(e) : res()));
        });
        pending.catch(() => {}); // awaited after the next read; never an unhandled rejection meanwhile
        [a, b] = [b, a];
      }
      if (pending) await pending;
    } finally {
      out.removeListener('close', onClose);
      fs.close(fd, () => {});
      giveBuffer(a);
      giveBuffer(b);
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

async function writeTemp(tmp: string, content: Buffer | string, durable: boolean): Promise<void> {
  const fh = await fsp.open(tmp, 'wx', 0o644);
  let ok = false;
  try {
    await fh.writeFile(content);
    if (durable) await fh.sync();
    ok = true;
  } finally {
    await fh.close();
    if (!ok) await fsp.rm(tmp, { force: true });
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
