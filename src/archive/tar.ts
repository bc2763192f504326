// Streaming tar parsing (ustar, GNU, PAX) with raw-byte accounting, modelled
// on Go's archive/tar as forked by vbatts/tar-split (RawAccounting): every
// byte that is not the data of a returned entry (headers, PAX/GNU extension
// headers and their data, padding, end-of-archive blocks, trailing garbage)
// is handed to the caller verbatim so tar-split can record it.
//
// Names, link names and PAX string values are kept as "binary strings"
// (latin1: one JS char per byte) so that non-UTF-8 names survive unchanged.
import { invalidArgument } from '../errors/index.js';

export const BLOCK = 512;
const MAX_SPECIAL_FILE = 1 << 20; // Go's maxSpecialFileSize for PAX/GNU long names

export type TarFormat = 'v7' | 'ustar' | 'pax' | 'gnu' | 'star';

export interface TarHeader {
  /** Entry name as raw bytes (latin1 string), after PAX/GNU long-name processing. */
  name: string;
  linkname: string;
  /** Single-character type flag ('0' regular, '1' hard link, … 'g' PAX global). */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  /** Size as recorded (PAX `size` wins); for header-only types no data follows. */
  size: number;
  /** Seconds since the epoch, may be fractional or negative. */
  mtime: number;
  atime?: number;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** SCHILY.xattr.* records: name (latin1) → raw value. */
  xattrs: Map<string, Buffer>;
  /** All PAX records that applied to this entry (key → latin1 value). */
  pax?: Map<string, string>;
  format: TarFormat;
}

/** Types that never carry data, whatever their size field says (Go's isHeaderOnlyType). */
export function isHeaderOnly(typeflag: string): boolean {
  return (
    typeflag === '1' || typeflag === '2' || typeflag === '3' || typeflag === '4' || typeflag === '5' || typeflag === '6'
  );
}

function cString(b: Buffer, start: number, end: number): string {
  let e = start;
  while (e < end && b[e] !== 0) e++;
  return b.toString('latin1', start, e);
}

function headerError(msg: string): Error {
  return invalidArgument(`invalid tar header: ${msg}`);
}

/** Go's parseNumeric: base-256 when the high bit is set, else octal padded with NULs/spaces. */
export function parseNumeric(b: Buffer, start: number, len: number, field: string): number {
  const first = b[start]!;
  if (first & 0x80) {
    const neg = (first & 0x40) !== 0;
    let x = 0n;
    for (let i = 0; i < len; i++) {
      let c = b[start + i]!;
      if (neg) c ^= 0xff;
      if (i === 0) c &= 0x7f;
      x = (x << 8n) | BigInt(c);
    }
    if (x >> 63n) throw headerError(`${field} overflows`);
    const v = neg ? -x - 1n : x;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER))
      throw headerError(`${field} is too large`);
    return Number(v);
  }
  let s = start;
  let e = start + len;
  while (s < e && (b[s] === 0x20 || b[s] === 0)) s++;
  while (e > s && (b[e - 1] === 0x20 || b[e - 1] === 0)) e--;
  if (s === e) return 0;
  let v = 0;
  for (let i = s; i < e; i++) {
    const c = b[i]!;
    if (c === 0) break; // parseString stops at the first NUL
    if (c < 0x30 || c > 0x37) throw headerError(`${field} is not an octal number`);
    v = v * 8 + (c - 0x30);
  }
  if (v > Number.MAX_SAFE_INTEGER) throw headerError(`${field} is too large`);
  return v;
}

/** Checks the header checksum (unsigned or signed sum, as Go accepts both). */
function checksumOk(b: Buffer): boolean {
  let want: number;
  try {
    want = parseNumeric(b, 148, 8, 'checksum');
  } catch {
    return false;
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    let c = b[i]!;
    if (i >= 148 && i < 156) c = 0x20;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return want === unsigned || want === signed;
}

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

function detectFormat(b: Buffer): TarFormat {
  const magic = b.toString('latin1', 257, 263);
  if (magic === 'ustar\0') return b.toString('latin1', 508, 512) === 'tar\0' ? 'star' : 'ustar';
  if (magic === 'ustar ' && b.toString('latin1', 263, 265) === ' \0') return 'gnu';
  return 'v7';
}

/** Parses one 512-byte header block (no PAX/GNU merging). */
export function parseHeaderBlock(b: Buffer): TarHeader {
  if (!checksumOk(b)) throw headerError('checksum mismatch');
  const format = detectFormat(b);
  let typeflag = String.fromCharCode(b[156]!);
  let name = cString(b, 0, 100);
  const h: TarHeader = {
    name,
    linkname: cString(b, 157, 257),
    typeflag,
    mode: parseNumeric(b, 100, 8, 'mode'),
    uid: parseNumeric(b, 108, 8, 'uid'),
    gid: parseNumeric(b, 116, 8, 'gid'),
    size: parseNumeric(b, 124, 12, 'size'),
    mtime: parseNumeric(b, 136, 12, 'mtime'),
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
    format,
  };
  if (format !== 'v7') {
    h.uname = cString(b, 265, 297);
    h.gname = cString(b, 297, 329);
    if (typeflag === '3' || typeflag === '4') {
      h.devmajor = parseNumeric(b, 329, 8, 'devmajor');
      h.devminor = parseNumeric(b, 337, 8, 'devminor');
    }
    let prefix = '';
    if (format === 'ustar') prefix = cString(b, 345, 500);
    else if (format === 'star') prefix = cString(b, 345, 476);
    else if (format === 'gnu' && b[345] !== 0) h.atime = parseNumeric(b, 345, 12, 'atime');
    if (prefix) name = `${prefix}/${name}`;
    h.name = name;
  }
  if (typeflag === '\0') {
    typeflag = name.endsWith('/') ? '5' : '0';
    h.typeflag = typeflag;
  }
  if (h.size < 0) throw headerError(`negative size for ${JSON.stringify(name)}`);
  return h;
}

function parsePaxTime(v: string, key: string): number {
  if (!/^-?[0-9]+(\.[0-9]*)?$/.test(v)) throw headerError(`invalid PAX ${key} ${JSON.stringify(v)}`);
  return Number(v);
}

function parsePaxInt(v: string, key: string): number {
  if (!/^[0-9]+$/.test(v)) throw headerError(`invalid PAX ${key} ${JSON.stringify(v)}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw headerError(`PAX ${key} is too large`);
  return n;
}

/** Parses PAX extended header records ("%d %s=%s\n"). Keys and values are latin1. */
export function parsePax(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0 || sp - off > 20) throw headerError('malformed PAX record length');
    const lenStr = buf.toString('latin1', off, sp);
    if (!/^[0-9]+$/.test(lenStr)) throw headerError('malformed PAX record length');
    const n = Number(lenStr);
    if (n < 5 || off + n > buf.length || buf[off + n - 1] !== 0x0a) throw headerError('malformed PAX record');
    const rec = buf.toString('latin1', sp + 1, off + n - 1);
    const eq = rec.indexOf('=');
    if (eq <= 0) throw headerError('malformed PAX record (no key)');
    const k = rec.slice(0, eq);
    const v = rec.slice(eq + 1);
    if (k === 'path' || k === 'linkpath' || k === 'uname' || k === 'gname') {
      if (v.includes('\0')) throw headerError(`PAX ${k} contains NUL`);
    } else if (k.includes('\0')) throw headerError('PAX key contains NUL');
    if (k.startsWith('GNU.sparse.')) throw invalidArgument('GNU sparse files are not supported');
    out.set(k, v);
    off += n;
  }
  return out;
}

function mergePax(h: TarHeader, pax: Map<string, string>): void {
  for (const [k, v] of pax) {
    switch (k) {
      case 'path':
        h.name = v;
        break;
      case 'linkpath':
        h.linkname = v;
        break;
      case 'uname':
        h.uname = v;
        break;
      case 'gname':
        h.gname = v;
        break;
      case 'uid':
        h.uid = parsePaxInt(v, k);
        break;
      case 'gid':
        h.gid = parsePaxInt(v, k);
        break;
      case 'size':
        h.size = parsePaxInt(v, k);
        break;
      case 'mtime':
        h.mtime = parsePaxTime(v, k);
        break;
      case 'atime':
        h.atime = parsePaxTime(v, k);
        break;
      default:
        if (k.startsWith('SCHILY.xattr.')) h.xattrs.set(k.slice(13), Buffer.from(v, 'latin1'));
    }
  }
  h.pax = pax;
}

export interface TarSink {
  /** An entry; `raw` = every byte since the end of the previous entry's data up to and including its header. */
  entry(h: TarHeader, raw: Buffer): void;
  /** Data of the current entry, in order; `dataSize` bytes in total. */
  data(buf: Buffer): void;
  /** End of the current entry's data. */
  entryEnd(): void;
  /** End of archive: padding of the last entry plus the end-of-archive blocks (may be empty). */
  end(raw: Buffer): void;
  /** Bytes after the end-of-archive marker (each chunk at most 1 MiB). */
  trailing(buf: Buffer): void;
}

enum S {
  Header,
  Meta,
  Data,
  Pad,
  Trailing,
}

/**
 * A synchronous push parser: feed it chunks with write(), then call finish()
 * at end of input. Throws BerthError('invalid-argument') on malformed input.
 */
export class TarParser {
  private state = S.Header;
  private readonly block = Buffer.allocUnsafe(BLOCK);
  private fill = 0;
  private raw: Buffer[] = [];
  private zeroBlocks = 0;
  private remaining = 0; // data or meta bytes still to read
  private pad = 0;
  private padRead = 0;
  private meta?: { type: string; buf: Buffer; fill: number };
  private pendingPax?: Map<string, string>;
  private longName?: string;
  private longLink?: string;
  private ended = false;
  /** The header currently being read (for error messages). */
  current?: TarHeader;
  offset = 0;

  constructor(private readonly sink: TarSink) {}

  write(chunk: Buffer): void {
    let off = 0;
    const len = chunk.length;
    this.offset += len;
    while (off < len) {
      switch (this.state) {
        case S.Header: {
          const take = Math.min(BLOCK - this.fill, len - off);
          chunk.copy(this.block, this.fill, off, off + take);
          this.fill += take;
          off += take;
          if (this.fill === BLOCK) {
            this.fill = 0;
            this.onHeaderBlock();
          }
          break;
        }
        case S.Meta: {
          const m = this.meta!;
          const take = Math.min(this.remaining, len - off);
          chunk.copy(m.buf, m.fill, off, off + take);
          this.raw.push(chunk.subarray(off, off + take));
          m.fill += take;
          this.remaining -= take;
          off += take;
          if (this.remaining === 0) this.onMetaDone();
          break;
        }
        case S.Data: {
          const take = Math.min(this.remaining, len - off);
          if (take > 0) this.sink.data(chunk.subarray(off, off + take));
          this.remaining -= take;
          off += take;
          if (this.remaining === 0) {
            this.state = this.pad ? S.Pad : S.Header;
            this.padRead = 0;
            this.sink.entryEnd();
          }
          break;
        }
        case S.Pad: {
          const take = Math.min(this.pad - this.padRead, len - off);
          if (take > 0) this.raw.push(chunk.subarray(off, off + take));
          this.padRead += take;
          off += take;
          if (this.padRead === this.pad) this.state = S.Header;
          break;
        }
        case S.Trailing: {
          for (let p = off; p < len; p += 1 << 20) this.sink.trailing(chunk.subarray(p, Math.min(len, p + (1 << 20))));
          off = len;
          break;
        }
      }
    }
  }

  private onHeaderBlock(): void {
    const b = this.block;
    if (this.zeroBlocks === 1) {
      this.raw.push(Buffer.from(b));
      if (!isZeroBlock(b)) throw headerError('zero block followed by a non-zero block');
      this.finishArchive();
      return;
    }
    if (isZeroBlock(b)) {
      if (this.meta || this.pendingPax || this.longName !== undefined || this.longLink !== undefined) {
        // Go ends the archive here too; the extension header simply has no entry.
      }
      this.raw.push(Buffer.from(b));
      this.zeroBlocks = 1;
      return;
    }
    const copy = Buffer.from(b);
    this.raw.push(copy);
    const h = parseHeaderBlock(copy);
    this.current = h;
    const t = h.typeflag;
    if (t === 'x' || t === 'g' || t === 'L' || t === 'K') {
      if (h.size > MAX_SPECIAL_FILE) throw headerError(`extension header of ${h.size} bytes is too large`);
      this.meta = { type: t, buf: Buffer.allocUnsafe(h.size), fill: 0 };
      this.remaining = h.size;
      this.pad = (BLOCK - (h.size % BLOCK)) % BLOCK;
      this.state = S.Meta;
      if (h.size === 0) this.onMetaDone();
      return;
    }
    if (t === 'S') throw invalidArgument(`GNU sparse file ${JSON.stringify(h.name)} is not supported`);
    if (this.longName !== undefined) h.name = this.longName;
    if (this.longLink !== undefined) h.linkname = this.longLink;
    if (this.pendingPax) mergePax(h, this.pendingPax);
    this.longName = this.longLink = this.pendingPax = undefined;
    this.emit(h, isHeaderOnly(t) ? 0 : h.size);
  }

  private emit(h: TarHeader, dataSize: number): void {
    const raw = this.raw.length === 1 ? this.raw[0]! : Buffer.concat(this.raw);
    this.raw = [];
    this.sink.entry(h, raw);
    this.remaining = dataSize;
    this.pad = (BLOCK - (dataSize % BLOCK)) % BLOCK;
    if (dataSize === 0) {
      this.sink.entryEnd();
      this.state = this.pad ? S.Pad : S.Header;
      this.padRead = 0;
    } else this.state = S.Data;
  }

  private onMetaDone(): void {
    const m = this.meta!;
    this.meta = undefined;
    const h = this.current!;
    if (m.type === 'x') this.pendingPax = parsePax(m.buf);
    else if (m.type === 'L') this.longName = cString(m.buf, 0, m.buf.length);
    else if (m.type === 'K') this.longLink = cString(m.buf, 0, m.buf.length);
    else {
      // PAX global header: Go returns it as an entry without data; the
      // records were read as part of the raw bytes, the padding follows.
      const pax = parsePax(m.buf);
      const g: TarHeader = { ...h, size: 0, xattrs: new Map() };
      mergePax(g, pax);
      g.size = 0;
      const raw = Buffer.concat(this.raw);
      this.raw = [];
      this.sink.entry(g, raw);
      this.sink.entryEnd();
    }
    this.padRead = 0;
    this.state = this.pad ? S.Pad : S.Header;
  }

  private finishArchive(): void {
    this.ended = true;
    const raw = Buffer.concat(this.raw);
    this.raw = [];
    this.sink.end(raw);
    this.state = S.Trailing;
  }

  /** Signals end of input; throws if the archive is truncated. */
  finish(): void {
    if (this.ended) return;
    const at = this.current ? ` (in or after entry ${JSON.stringify(this.current.name)})` : '';
    const clean = (this.state === S.Header && this.fill === 0) || (this.state === S.Pad && this.padRead === 0);
    if (!clean) throw invalidArgument(`unexpected end of tar archive${at}`);
    if (this.pendingPax || this.longName !== undefined || this.longLink !== undefined) {
      // Go's reader also reports plain EOF here.
    }
    this.finishArchive();
  }
}

/** Go's path.Clean for slash-separated paths (works on latin1 strings). */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(c);
  }
  const s = out.join('/');
  if (rooted) return `/${s}`;
  return s === '' ? '.' : s;
}
