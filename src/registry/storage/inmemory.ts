// An in-memory driver: the second implementation of the driver contract (for
// tests and `storage: inmemory`), proving the stores assume nothing about files.
import { Readable } from 'node:stream';
import {
  checkDriverPath,
  type FileInfo,
  type FileWriter,
  InvalidOffsetError,
  PathNotFoundError,
  type StorageDriver,
  type WalkResult,
} from './driver.js';

interface Entry {
  data: Buffer;
  modTime: Date;
}

export class InMemoryDriver implements StorageDriver {
  readonly name = 'inmemory';
  private readonly files = new Map<string, Entry>();

  private isDir(p: string): boolean {
    const prefix = p === '/' ? '/' : `${p}/`;
    for (const k of this.files.keys()) if (k.startsWith(prefix)) return true;
    return false;
  }

  async getContent(p: string): Promise<Buffer> {
    const e = this.files.get(checkDriverPath(p));
    if (!e) throw new PathNotFoundError(p);
    return Buffer.from(e.data);
  }

  async putContent(p: string, content: Buffer | string): Promise<void> {
    this.files.set(checkDriverPath(p), { data: Buffer.from(content), modTime: new Date() });
  }

  async reader(p: string, offset = 0, length?: number): Promise<Readable> {
    const data = await this.getContent(p);
    if (offset < 0 || offset > data.length) throw new InvalidOffsetError(p, offset);
    return Readable.from([data.subarray(offset, length === undefined ? undefined : offset + length)]);
  }

  async writer(p: string, append: boolean): Promise<FileWriter> {
    checkDriverPath(p);
    const base = append ? (this.files.get(p)?.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    const chunks: Buffer[] = [base];
    const files = this.files;
    let size = base.length;
    let done = false;
    const flush = () => files.set(p, { data: Buffer.concat(chunks), modTime: new Date() });
    flush();
    return {
      get size() {
        return size;
      },
      async write(chunk: Buffer) {
        if (done) throw new Error('writer already closed');
        chunks.push(Buffer.from(chunk));
        size += chunk.length;
      },
      async commit() {
        if (!done) flush();
        done = true;
      },
      async close() {
        if (!done) flush();
        done = true;
      },
      async cancel() {
        done = true;
        files.delete(p);
      },
    };
  }

  async stat(p: string): Promise<FileInfo> {
    checkDriverPath(p);
    const e = this.files.get(p);
    if (e) return { path: p, size: e.data.length, modTime: e.modTime, isDir: false };
    if (this.isDir(p)) return { path: p, size: 0, modTime: new Date(), isDir: true };
    throw new PathNotFoundError(p);
  }

  async list(p: string): Promise<string[]> {
    checkDriverPath(p);
    const prefix = p === '/' ? '/' : `${p}/`;
    const out = new Set<string>();
    for (const k of this.files.keys()) {
      if (!k.startsWith(prefix)) continue;
      out.add(prefix + k.slice(prefix.length).split('/')[0]!);
    }
    if (out.size === 0 && !this.files.has(p)) throw new PathNotFoundError(p);
    return [...out].sort();
  }

  async move(source: string, dest: string): Promise<void> {
    const e = this.files.get(checkDriverPath(source));
    if (!e) throw new PathNotFoundError(source);
    checkDriverPath(dest);
    this.files.delete(source);
    this.files.set(dest, e);
  }

  async delete(p: string): Promise<void> {
    checkDriverPath(p);
    let found = this.files.delete(p);
    const prefix = `${p}/`;
    for (const k of [...this.files.keys()]) {
      if (k.startsWith(prefix)) {
        this.files.delete(k);
        found = true;
      }
    }
    if (!found) throw new PathNotFoundError(p);
  }

  async walk(p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void> {
    const inner = async (dir: string): Promise<boolean> => {
      for (const c of await this.list(dir)) {
        const fi = await this.stat(c);
        const r = await fn(fi);
        if (r === 'stop') return true;
        if (fi.isDir && r !== 'skip-dir' && (await inner(c))) return true;
      }
      return false;
    };
    await inner(p);
  }
}
