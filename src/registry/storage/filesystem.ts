// The filesystem storage driver: driver paths map under `rootdirectory`,
// exactly as distribution's filesystem driver does, so the two can serve the
// same tree. putContent is temp file + fsync + rename + fsync(dir).
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { errnoCode } from '../../errors/index.js';
import { atomicWriteFile, TEMP_PREFIX } from '../../fsutil/index.js';
import {
  checkDriverPath,
  type FileInfo,
  type FileWriter,
  InvalidOffsetError,
  PathNotFoundError,
  type StorageDriver,
  type WalkResult,
} from './driver.js';

let tmpSeq = 0;

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
    if (opts.sync === false) {
      // Link files: write + rename, creating the directory only when it is missing (fewer syscalls).
      const tmp = `${path.dirname(f)}/${TEMP_PREFIX}${process.pid}-${(tmpSeq++).toString(36)}`;
      try {
        await fsp.writeFile(tmp, content, { mode: 0o644 });
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT') throw e;
        await fsp.mkdir(path.dirname(f), { recursive: true, mode: 0o755 });
        await fsp.writeFile(tmp, content, { mode: 0o644 });
      }
      try {
        await fsp.rename(tmp, f);
      } catch (e) {
        await fsp.rm(tmp, { force: true });
        throw e;
      }
      return;
    }
    await fsp.mkdir(path.dirname(f), { recursive: true, mode: 0o755 });
    await atomicWriteFile(f, content);
  }

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

function mapErr(e: unknown, p: string): unknown {
  const code = errnoCode(e);
  if (code === 'ENOENT' || code === 'ENOTDIR') return new PathNotFoundError(p);
  return e;
}

/** For tests and tools: does a real file exist under the root? */
export function existsSync(root: string, p: string): boolean {
  return fs.existsSync(path.join(root, checkDriverPath(p)));
}
