// A small streaming tar reader and writer for the *outer* `docker save` tar
// (manifest.json, configs, layer.tar files, symlinks between them). Layer
// contents are never parsed here: they go to the layer store as opaque bytes.
// Reader: ustar, GNU (L/K long names, base-256 sizes), PAX (path, linkpath, size).
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { invalidArgument } from '../../errors/index.js';

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface TarHeader {
  name: string;
  type: TarEntryType;
  size: number;
  mode: number;
  mtime: number;
  linkname: string;
}

const BLOCK = 512;

/** Pulls exact byte counts out of an async chunk stream. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly it: AsyncIterator<Buffer | string>;
  private done = false;

  constructor(src: AsyncIterable<Buffer | string>) {
    this.it = src[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const b = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    if (b.length) {
      this.chunks.push(b);
      this.buffered += b.length;
    }
    return true;
  }

  /** Reads exactly n bytes, or fewer at end of stream. */
  async read(n: number): Promise<Buffer> {
    while (this.buffered < n && (await this.fill()));
    return this.take(Math.min(n, this.buffered));
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  /** Hands n bytes to `sink` chunk by chunk (with backpressure when it returns a promise). */
  async pipe(n: number, sink: (b: Buffer) => void | Promise<void>): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill())) throw invalidArgument('unexpected end of tar stream');
      const first = this.chunks[0]!;
      const piece = first.length <= left ? first : first.subarray(0, left);
      if (piece === first) this.chunks.shift();
      else this.chunks[0] = first.subarray(left);
      this.buffered -= piece.length;
      left -= piece.length;
      const r = sink(piece);
      if (r) await r;
    }
  }

  async skip(n: number): Promise<void> {
    await this.pipe(n, () => {});
  }
}

function cstr(b: Buffer): string {
  const z = b.indexOf(0);
  return (z === -1 ? b : b.subarray(0, z)).toString('utf8');
}

function octal(b: Buffer, what: string): number {
  if (b[0]! & 0x80) {
    // GNU base-256
    let v = 0;
    for (let i = 1; i < b.length; i++) v = v * 256 + b[i]!;
    return v;
  }
  const s = cstr(b).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw invalidArgument(`invalid tar header: bad ${what} field ${JSON.stringify(s)}`);
  return Number.parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = octal(h.subarray(148, 156), 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === stored;
}

function parsePax(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < b.length) {
    const sp = b.indexOf(0x20, i);
    if (sp === -1) break;
    const len = Number.parseInt(b.subarray(i, sp).toString('ascii'), 10);
    if (!Number.isFinite(len) || len <= 0) throw invalidArgument('invalid tar PAX header');
    const rec = b.subarray(sp + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '5': 'dir',
  '2': 'symlink',
  '1': 'hardlink',
};

/**
 * Reads a tar stream, calling `onEntry` for each entry; the callback must
 * consume the body through `body(sink)` (or it is skipped).
 */
export async function readTar(
  src: AsyncIterable<Buffer | string>,
  onEntry: (h: TarHeader, body: (sink: (b: Buffer) => void | Promise<void>) => Promise<void>) => Promise<void>,
): Promise<void> {
  const r = new ByteReader(src);
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  for (;;) {
    const h = await r.read(BLOCK);
    if (h.length === 0) return; // EOF without end blocks: accept, like Go's archive/tar
    if (h.length < BLOCK) throw invalidArgument('unexpected end of tar stream');
    if (h.every((x) => x === 0)) return;
    if (!checksumOk(h)) throw invalidArgument('invalid tar header: checksum mismatch');
    const flag = String.fromCharCode(h[156]!);
    let size = octal(h.subarray(124, 136), 'size');
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
      if (size > 1 << 20) throw invalidArgument('tar extended header too large');
      const data = await r.read(padded);
      if (data.length < padded) throw invalidArgument('unexpected end of tar stream');
      const body = data.subarray(0, size);
      if (flag === 'L') longName = cstr(body);
      else if (flag === 'K') longLink = cstr(body);
      else if (flag === 'x') pax = { ...pax, ...parsePax(body) };
      continue;
    }
    const magic = h.subarray(257, 263).toString('latin1');
    const prefix = magic.startsWith('ustar') && magic !== 'ustar ' ? cstr(h.subarray(345, 500)) : '';
    let name = cstr(h.subarray(0, 100));
    if (prefix) name = `${prefix}/${name}`;
    if (longName !== undefined) name = longName;
    if (pax.path !== undefined) name = pax.path;
    let linkname = cstr(h.subarray(157, 257));
    if (longLink !== undefined) linkname = longLink;
    if (pax.linkpath !== undefined) linkname = pax.linkpath;
    if (pax.size !== undefined) size = Number.parseInt(pax.size, 10);
    longName = longLink = undefined;
    pax = {};
    const type = TYPES[flag] ?? 'other';
    const dataSize = type === 'file' || type === 'other' ? size : 0;
    const dataPadded = Math.ceil(dataSize / BLOCK) * BLOCK;
    let consumed = false;
    const body = async (sink: (b: Buffer) => void | Promise<void>) => {
      if (consumed) throw new Error('tar entry body read twice');
      consumed = true;
      await r.pipe(dataSize, sink);
      await r.skip(dataPadded - dataSize);
    };
    await onEntry(
      {
        name,
        type,
        size: dataSize,
        mode: octal(h.subarray(100, 108), 'mode'),
        mtime: octal(h.subarray(136, 148), 'mtime'),
        linkname,
      },
      body,
    );
    if (!consumed) await body(() => {});
  }
}

// ---------------------------------------------------------------- writer

function writeOctal(h: Buffer, off: number, len: number, v: number): void {
  const s = v.toString(8).padStart(len - 1, '0');
  if (s.length > len - 1) {
    // base-256 for big sizes
    h[off] = 0x80;
    let x = v;
    for (let i = off + len - 1; i > off; i--) {
      h[i] = x % 256;
      x = Math.floor(x / 256);
    }
    return;
  }
  h.write(`${s}\0`, off, len, 'ascii');
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return Buffer.from(`${len}${body}`);
}

export interface WriteHeader {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  size?: number;
  mode?: number;
  mtime?: number;
  linkname?: string;
}

function rawHeader(h: WriteHeader, flag: string, name: string, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, 'utf8');
  writeOctal(b, 100, 8, h.mode ?? (h.type === 'dir' ? 0o755 : 0o644));
  writeOctal(b, 108, 8, 0);
  writeOctal(b, 116, 8, 0);
  writeOctal(b, 124, 12, size);
  writeOctal(b, 136, 12, Math.floor(h.mtime ?? 0));
  b.write('        ', 148, 8, 'ascii');
  b.write(flag, 156, 1, 'ascii');
  if (h.linkname) b.write(h.linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257, 6, 'ascii');
  b.write('00', 263, 2, 'ascii');
  b.write('root', 265, 32, 'ascii');
  b.write('root', 297, 32, 'ascii');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return b;
}

/** Writes tar entries to a Writable with backpressure. */
export class TarWriter {
  constructor(private readonly out: Writable) {}

  private async write(b: Buffer): Promise<void> {
    if (!this.out.write(b)) await once(this.out, 'drain');
  }

  async header(h: WriteHeader): Promise<void> {
    const size = h.type === 'file' ? (h.size ?? 0) : 0;
    const flag = h.type === 'file' ? '0' : h.type === 'dir' ? '5' : '2';
    const tooLong = Buffer.byteLength(h.name) > 100 || Buffer.byteLength(h.linkname ?? '') > 100;
    if (tooLong) {
      const recs = [paxRecord('path', h.name)];
      if (h.linkname) recs.push(paxRecord('linkpath', h.linkname));
      const body = Buffer.concat(recs);
      await this.write(rawHeader({ name: 'PaxHeader', type: 'file', mtime: h.mtime }, 'x', 'PaxHeader', body.length));
      await this.write(body);
      await this.pad(body.length);
    }
    await this.write(rawHeader(h, flag, h.name.slice(0, 100), size));
  }

  async pad(size: number): Promise<void> {
    const rem = size % BLOCK;
    if (rem) await this.write(Buffer.alloc(BLOCK - rem));
  }

  async file(name: string, data: Buffer, opts: { mode?: number; mtime?: number } = {}): Promise<void> {
    await this.header({ name, type: 'file', size: data.length, ...opts });
    await this.write(data);
    await this.pad(data.length);
  }

  /** Streams `size` bytes of `src` as the body of a file entry. */
  async stream(name: string, size: number, src: Readable, opts: { mode?: number; mtime?: number } = {}): Promise<void> {
    await this.header({ name, type: 'file', size, ...opts });
    let n = 0;
    for await (const c of src) {
      n += (c as Buffer).length;
      if (n > size) throw new Error(`tar entry ${name} grew beyond ${size} bytes`);
      await this.write(c as Buffer);
    }
    if (n !== size) throw new Error(`tar entry ${name}: expected ${size} bytes, got ${n}`);
    await this.pad(size);
  }

  async end(): Promise<void> {
    await this.write(Buffer.alloc(BLOCK * 2));
  }
}
