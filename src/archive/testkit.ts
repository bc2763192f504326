// TarWriter: builds tar archives in memory, in Go's archive/tar style by
// default (ustar when the header fits, PAX otherwise), or forced to ustar,
// pax, gnu (LongName/LongLink, base-256 numbers) or v7 — including
// deliberately malformed or hostile entries, for tests anywhere in berth.
// encodeGoHeader is also what exportDiff uses to write headers.

export type TarFormatChoice = 'auto' | 'ustar' | 'pax' | 'gnu' | 'v7';

export interface TarEntrySpec {
  /** Entry name; a string is UTF-8 encoded, a Buffer is used as raw bytes. */
  name: string | Buffer;
  /** Type flag character: '0' file (default), '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, or anything. */
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** Seconds since the epoch (integer for ustar; PAX keeps fractions). */
  mtime?: number;
  atime?: number;
  linkname?: string | Buffer;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, string | Buffer>;
  /** Extra raw PAX records (forces a PAX header). */
  pax?: Record<string, string>;
  format?: TarFormatChoice;
  /** Size written in the header (defaults to the data length). */
  size?: number;
  // --- hostile knobs ---
  /** Corrupt the header checksum. */
  badChecksum?: boolean;
  /** Raw bytes for the 12-byte size field (e.g. a negative base-256 number). */
  rawSizeField?: Buffer;
  /** Omit data padding after the entry. */
  noPad?: boolean;
}

const BLOCK = 512;

function bin(s: string | Buffer | undefined): string {
  if (s === undefined) return '';
  return typeof s === 'string' ? Buffer.from(s, 'utf8').toString('latin1') : s.toString('latin1');
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

function fitsOctal(width: number, x: number): boolean {
  return x >= 0 && x < 8 ** (width - 1);
}

function putString(b: Buffer, off: number, width: number, s: string): void {
  const n = Math.min(s.length, width);
  b.write(s.slice(0, n), off, n, 'latin1');
  if (n < width) b[off + n] = 0;
}

function putOctal(b: Buffer, off: number, width: number, x: number): void {
  if (!fitsOctal(width, x)) x = 0;
  putString(b, off, width, x.toString(8).padStart(width - 1, '0'));
}

function putNumeric(b: Buffer, off: number, width: number, x: number): void {
  if (fitsOctal(width, x)) {
    putOctal(b, off, width, x);
    return;
  }
  let v = BigInt(x);
  for (let i = width - 1; i >= 0; i--) {
    b[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  b[off] = (b[off]! & 0x7f) | 0x80;
  if (x < 0) b[off] = b[off]! | 0x40;
}

export function setChecksum(b: Buffer, bad = false): void {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  if (bad) sum += 1;
  putString(b, 148, 7, sum.toString(8).padStart(6, '0'));
  b[155] = 0x20;
}

function splitUstar(name: string): [string, string] | null {
  let length = name.length;
  if (length <= 100 || !isAscii(name)) return null;
  if (length > 156) length = 156;
  else if (name[length - 1] === '/') length--;
  const i = name.lastIndexOf('/', length - 1);
  const nlen = name.length - i - 1;
  if (i <= 0 || nlen > 100 || nlen === 0 || i > 155) return null;
  return [name.slice(0, i), name.slice(i + 1)];
}

export function paxRecord(k: string, v: string): string {
  let size = k.length + v.length + 3;
  size += String(size).length;
  let rec = `${size} ${k}=${v}\n`;
  if (rec.length !== size) rec = `${rec.length} ${k}=${v}\n`;
  return rec;
}

interface Fields {
  name: string;
  linkname: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

function block(f: Fields, magic: 'ustar' | 'gnu' | 'v7', prefix = ''): Buffer {
  const b = Buffer.alloc(BLOCK);
  const num = magic === 'gnu' ? putNumeric : putOctal;
  putString(b, 0, 100, f.name);
  num(b, 100, 8, f.mode);
  num(b, 108, 8, f.uid);
  num(b, 116, 8, f.gid);
  num(b, 124, 12, f.size);
  num(b, 136, 12, Math.floor(f.mtime));
  b[156] = f.type.charCodeAt(0);
  putString(b, 157, 100, f.linkname);
  if (magic !== 'v7') {
    b.write(magic === 'gnu' ? 'ustar  \0' : 'ustar\x0000', 257, 8, 'latin1');
    putString(b, 265, 32, f.uname);
    putString(b, 297, 32, f.gname);
    num(b, 329, 8, f.devmajor);
    num(b, 337, 8, f.devminor);
    if (prefix) putString(b, 345, 155, prefix);
  }
  return b;
}

function rawFile(name: string, data: Buffer, type: string, magic: 'ustar' | 'gnu'): Buffer[] {
  let n = isAscii(name) ? name : name.replace(/[^\x00-\x7f]/g, '');
  if (n.length > 100) n = n.slice(0, 100);
  n = n.replace(/\/+$/, '');
  const h = block(
    {
      name: n,
      linkname: '',
      type,
      mode: 0,
      uid: 0,
      gid: 0,
      size: data.length,
      mtime: 0,
      uname: '',
      gname: '',
      devmajor: 0,
      devminor: 0,
    },
    magic,
  );
  setChecksum(h);
  return [h, data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK)];
}

function paxTime(t: number): string {
  if (Number.isInteger(t)) return String(t);
  const s = t.toFixed(9).replace(/0+$/, '');
  return s.endsWith('.') ? s.slice(0, -1) : s;
}

/**
 * Header blocks (including any PAX/GNU extension headers) for one entry, the
 * way Go's tar.Writer lays them out. `dataLength` is the number of data
 * bytes that will follow.
 */
export function encodeHeader(spec: TarEntrySpec, dataLength = 0): Buffer {
  const type = spec.type ?? '0';
  const f: Fields = {
    name: bin(spec.name),
    linkname: bin(spec.linkname),
    type,
    mode: spec.mode ?? (type === '5' ? 0o755 : type === '2' ? 0o777 : 0o644),
    uid: spec.uid ?? 0,
    gid: spec.gid ?? 0,
    size: spec.size ?? dataLength,
    mtime: spec.mtime ?? 0,
    uname: bin(spec.uname),
    gname: bin(spec.gname),
    devmajor: spec.devmajor ?? 0,
    devminor: spec.devminor ?? 0,
  };
  const format = spec.format ?? 'auto';
  const out: Buffer[] = [];
  let prefix = '';

  if (format === 'gnu') {
    if (f.name.length > 100) out.push(...rawFile('././@LongLink', Buffer.from(`${f.name}\0`, 'latin1'), 'L', 'gnu'));
    if (f.linkname.length > 100)
      out.push(...rawFile('././@LongLink', Buffer.from(`${f.linkname}\0`, 'latin1'), 'K', 'gnu'));
    const b = block({ ...f, name: f.name.slice(0, 100), linkname: f.linkname.slice(0, 100) }, 'gnu');
    if (spec.atime !== undefined) putNumeric(b, 345, 12, Math.floor(spec.atime));
    finishBlock(b, spec);
    out.push(b);
    return Buffer.concat(out);
  }
  if (format === 'v7') {
    const b = block(f, 'v7');
    finishBlock(b, spec);
    return b;
  }

  // ustar / pax / auto (Go: ustar if representable, else PAX).
  const pax = new Map<string, string>();
  let ustarOk = true;
  if (f.name.length > 100 || !isAscii(f.name)) {
    const split = splitUstar(f.name);
    if (split) [prefix] = split;
    else ustarOk = false;
    pax.set('path', f.name);
  }
  const str = (v: string, width: number, key: string) => {
    if (v.length > width || !isAscii(v)) {
      ustarOk = false;
      pax.set(key, v);
    }
  };
  str(f.linkname, 100, 'linkpath');
  str(f.uname, 32, 'uname');
  str(f.gname, 32, 'gname');
  const numeric = (v: number, width: number, key: string) => {
    if (!fitsOctal(width, v)) {
      ustarOk = false;
      pax.set(key, String(v));
    }
  };
  numeric(f.uid, 8, 'uid');
  numeric(f.gid, 8, 'gid');
  numeric(f.size, 12, 'size');
  if (!fitsOctal(12, Math.floor(f.mtime)) || (format === 'pax' && !Number.isInteger(f.mtime))) {
    ustarOk = false;
    pax.set('mtime', paxTime(f.mtime));
  }
  if (format === 'pax' && spec.atime !== undefined) pax.set('atime', paxTime(spec.atime));
  for (const [k, v] of Object.entries(spec.xattrs ?? {})) {
    ustarOk = false;
    pax.set(`SCHILY.xattr.${k}`, bin(v));
  }
  for (const [k, v] of Object.entries(spec.pax ?? {})) {
    ustarOk = false;
    pax.set(k, bin(v));
  }
  if (format === 'pax' && pax.size > 0) ustarOk = false;

  if (ustarOk && format !== 'pax') {
    const b = block({ ...f, name: prefix ? f.name.slice(prefix.length + 1) : f.name }, 'ustar', prefix);
    finishBlock(b, spec);
    return b;
  }
  if (format === 'ustar') throw new Error(`entry ${JSON.stringify(f.name)} does not fit in ustar`);
  if (pax.size) {
    const keys = [...pax.keys()].sort();
    const data = Buffer.from(keys.map((k) => paxRecord(k, pax.get(k)!)).join(''), 'latin1');
    const slash = f.name.replace(/\/+$/, '').lastIndexOf('/');
    const dir = f.name.slice(0, slash + 1);
    const file = f.name.slice(slash + 1);
    const pname = `${dir}PaxHeaders.0/${file}`.replace(/\/+$/, '');
    out.push(...rawFile(pname, data, 'x', 'ustar'));
  }
  const main = block(
    {
      ...f,
      name: asciiField(f.name, 100),
      linkname: asciiField(f.linkname, 100),
      uname: asciiField(f.uname, 32),
      gname: asciiField(f.gname, 32),
    },
    'ustar',
  );
  finishBlock(main, spec);
  out.push(main);
  return Buffer.concat(out);
}

function asciiField(s: string, width: number): string {
  const a = s.replace(/[^\x00-\x7f]/g, '');
  if (a.length > width && a[width - 1] === '/') {
    const n = a.slice(0, width - 1).replace(/\/+$/, '').length;
    return `${a.slice(0, n)}\0`;
  }
  return a;
}

function finishBlock(b: Buffer, spec: TarEntrySpec): void {
  if (spec.rawSizeField) spec.rawSizeField.copy(b, 124, 0, 12);
  setChecksum(b, spec.badChecksum);
}

export class TarWriter {
  private readonly parts: Buffer[] = [];

  /** Appends an entry (header(s), data, padding). */
  add(spec: TarEntrySpec, data?: Buffer | string): this {
    const d = data === undefined ? Buffer.alloc(0) : typeof data === 'string' ? Buffer.from(data) : data;
    this.parts.push(encodeHeader(spec, d.length));
    if (d.length) this.parts.push(d);
    if (!spec.noPad && d.length % BLOCK) this.parts.push(Buffer.alloc(BLOCK - (d.length % BLOCK)));
    return this;
  }

  file(name: string | Buffer, data: Buffer | string, extra: Partial<TarEntrySpec> = {}): this {
    return this.add({ name, type: '0', ...extra }, data);
  }

  dir(name: string | Buffer, extra: Partial<TarEntrySpec> = {}): this {
    return this.add({ name, type: '5', ...extra });
  }

  symlink(name: string | Buffer, target: string | Buffer, extra: Partial<TarEntrySpec> = {}): this {
    return this.add({ name, type: '2', linkname: target, ...extra });
  }

  hardlink(name: string | Buffer, target: string | Buffer, extra: Partial<TarEntrySpec> = {}): this {
    return this.add({ name, type: '1', linkname: target, ...extra });
  }

  /** Appends raw bytes verbatim. */
  raw(buf: Buffer): this {
    this.parts.push(buf);
    return this;
  }

  /** The archive; by default ends with two zero blocks, like Go's writer. */
  finish(opts: { zeroBlocks?: number; trailing?: Buffer } = {}): Buffer {
    const tail: Buffer[] = [Buffer.alloc(BLOCK * (opts.zeroBlocks ?? 2))];
    if (opts.trailing) tail.push(opts.trailing);
    return Buffer.concat([...this.parts, ...tail]);
  }
}
