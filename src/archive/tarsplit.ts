// tar-split metadata in the exact format of vbatts/tar-split `tar/storage`
// (what moby keeps as layerdb/sha256/<chain>/tar-split.json.gz): gzip of
// newline-delimited JSON, one Go json.Encoder.Encode(Entry) per line:
//   {"type":1|2,"name":…,"name_raw":…,"size":…,"payload":…,"position":N}
// `name`, `name_raw` and `size` are omitempty; `payload` is base64 or null.
// type 2 (segment): raw header/padding/trailer bytes. type 1 (file): payload
// is the 8-byte big-endian CRC-64/ISO of the file data, or null when size is 0.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import zlib from 'node:zlib';
import { invalidArgument } from '../errors/index.js';
import { fsyncDir } from '../fsutil/index.js';

export const SEGMENT = 2;
export const FILE = 1;

export interface TarSplitEntry {
  type: 1 | 2;
  /** Name as raw bytes in a latin1 string (from `name` or `name_raw`). */
  name: string;
  size: number;
  payload: Buffer | null;
  position: number;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: false });

/** Go json string encoding (HTML-safe escaping, as json.Encoder does by default). */
function goJsonString(s: string): string {
  let out = '"';
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (
      c < 0x20 ||
      c === 0x22 ||
      c === 0x5c ||
      c === 0x3c ||
      c === 0x3e ||
      c === 0x26 ||
      c === 0x2028 ||
      c === 0x2029
    ) {
      switch (c) {
        case 0x22:
          esc = '\\"';
          break;
        case 0x5c:
          esc = '\\\\';
          break;
        case 0x0a:
          esc = '\\n';
          break;
        case 0x0d:
          esc = '\\r';
          break;
        case 0x09:
          esc = '\\t';
          break;
        case 0x08:
          esc = '\\b';
          break;
        case 0x0c:
          esc = '\\f';
          break;
        default:
          esc = `\\u${c.toString(16).padStart(4, '0')}`;
      }
    }
    if (esc) {
      out += s.slice(last, i) + esc;
      last = i + 1;
    }
  }
  return `${out}${s.slice(last)}"`;
}

/** Encodes one entry exactly as tar-split's jsonPacker writes it (with the trailing newline). */
export function encodeEntry(
  type: 1 | 2,
  position: number,
  payload: Buffer | null,
  name?: string,
  size?: number,
): string {
  let s = `{"type":${type}`;
  if (name !== undefined && name !== '') {
    const bytes = Buffer.from(name, 'latin1');
    const decoded = utf8Decoder.decode(bytes);
    // tar-split's IsValidUtf8String: any U+FFFD (invalid byte or literal) → name_raw.
    if (decoded.includes('\ufffd')) s += `,"name_raw":"${bytes.toString('base64')}"`;
    else s += `,"name":${goJsonString(decoded)}`;
  }
  if (size) s += `,"size":${size}`;
  s += `,"payload":${payload === null ? 'null' : `"${payload.toString('base64')}"`}`;
  return `${s},"position":${position}}\n`;
}

export function crcBytes(crc: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(crc);
  return b;
}

/** Streams tar-split entries to `<target>` (via a temp file, fsync'd and renamed on commit()). */
export class TarSplitWriter {
  private readonly tmp: string;
  private readonly gz: zlib.Gzip;
  private readonly out: fs.WriteStream;
  private readonly done: Promise<void>;
  private pos = 0;
  private buf = '';
  private failed?: Error;

  constructor(private readonly target: string) {
    this.tmp = path.join(path.dirname(target), `.tmp-${path.basename(target)}-${randomBytes(6).toString('hex')}`);
    this.gz = zlib.createGzip();
    this.out = fs.createWriteStream(this.tmp, { flags: 'wx', mode: 0o600 });
    this.gz.pipe(this.out);
    this.done = new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => {
        this.failed ??= e;
        reject(e);
      };
      this.gz.on('error', fail);
      this.out.on('error', fail);
      this.out.on('close', resolve);
    });
    this.done.catch(() => {});
  }

  segment(payload: Buffer): void {
    if (payload.length === 0) return;
    this.buf += encodeEntry(SEGMENT, this.pos++, payload);
    if (this.buf.length > 1 << 16) this.flush();
  }

  file(name: string, size: number, crc: bigint | null): void {
    this.buf += encodeEntry(FILE, this.pos++, size > 0 ? crcBytes(crc ?? 0n) : null, name, size);
    if (this.buf.length > 1 << 16) this.flush();
  }

  private flush(): void {
    if (this.buf) this.gz.write(this.buf);
    this.buf = '';
  }

  /** Waits if the gzip stream is backed up. */
  async drain(): Promise<void> {
    if (this.failed) throw this.failed;
    if (this.gz.writableNeedDrain) await new Promise<void>((r) => this.gz.once('drain', r));
  }

  async commit(): Promise<void> {
    this.flush();
    this.gz.end();
    await this.done;
    const fd = fs.openSync(this.tmp, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(this.tmp, this.target);
    await fsyncDir(path.dirname(this.target));
  }

  /** Stops writing and removes the temp file; resolves once it is gone (the file may be opened after a destroy). */
  abort(): Promise<void> {
    this.gz.destroy();
    const closed = this.out.closed
      ? Promise.resolve()
      : new Promise<void>((r) => {
          this.out.once('close', () => r());
        });
    this.out.destroy();
    const rm = () => {
      try {
        fs.rmSync(this.tmp, { force: true });
      } catch {}
    };
    rm();
    return closed.then(rm);
  }
}

function parseLine(line: string, lineNo: number): TarSplitEntry {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(line) as Record<string, unknown>;
  } catch (e) {
    throw invalidArgument(`tar-split: line ${lineNo} is not valid JSON`, e);
  }
  const type = j.type;
  if (type !== 1 && type !== 2) throw invalidArgument(`tar-split: line ${lineNo} has unknown type ${String(type)}`);
  let name = '';
  if (typeof j.name_raw === 'string' && j.name_raw) name = Buffer.from(j.name_raw, 'base64').toString('latin1');
  else if (typeof j.name === 'string') name = Buffer.from(j.name, 'utf8').toString('latin1');
  const size = typeof j.size === 'number' ? j.size : 0;
  if (!Number.isSafeInteger(size) || size < 0) throw invalidArgument(`tar-split: line ${lineNo} has a bad size`);
  const payload = typeof j.payload === 'string' ? Buffer.from(j.payload, 'base64') : null;
  return { type, name, size, payload, position: typeof j.position === 'number' ? j.position : -1 };
}

/** Reads tar-split entries from a `tar-split.json.gz` stream (berth- or moby-written). */
export async function* readTarSplit(input: Readable): AsyncGenerator<TarSplitEntry> {
  const gunzip = zlib.createGunzip();
  input.on('error', (e) => gunzip.destroy(e));
  input.pipe(gunzip);
  const dec = new StringDecoder('utf8');
  let rest = '';
  let lineNo = 0;
  for await (const chunk of gunzip as AsyncIterable<Buffer>) {
    rest += dec.write(chunk);
    let start = 0;
    let nl = rest.indexOf('\n');
    while (nl >= 0) {
      const line = rest.slice(start, nl);
      lineNo++;
      if (line.trim()) yield parseLine(line, lineNo);
      start = nl + 1;
      nl = rest.indexOf('\n', start);
    }
    rest = rest.slice(start);
  }
  rest += dec.end();
  if (rest.trim()) yield parseLine(rest, ++lineNo);
}
