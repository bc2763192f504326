// The `local` log driver's files (moby daemon/logger/local): the shim writes
// `<container dir>/local-logs/container.log`, each message framed as
// [uint32 BE size][protobuf LogEntry][uint32 BE size] (entry.proto: source=1,
// time_nano=2, line=3 without its "\n", partial=4, partial_log_metadata=5
// {last=1, id=2, ordinal=3}). Rotation is moby's: container.log.1 is the
// newest rotated file; with compress (the default) rotated files are gzipped
// to container.log.N.gz. The shim only renames (it shifts .N and .N.gz
// alike); berthd gzips container.log.1 afterwards (compressRotated, run by
// watchLocalLog while the container runs and once more when it stops).
//
// Reading yields the same LogRecords as readJsonLog: the line gets its "\n"
// back unless the entry is a partial piece that does not end the line.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { followLog, type LiveFile } from './follow.js';
import { type LogRecord, openWhenExists, parseRfc3339Ns, type ReadLogsOptions } from './jsonfile.js';

export interface LocalEntry {
  source: string;
  timeNano: bigint;
  line: Buffer;
  partial: boolean;
  partialMeta?: { last: boolean; id: string; ordinal: number };
  /** attrs=6 (repeated LogAttr {key=1, value=2}): labels/env/tag log-opts, as in current moby. */
  attrs?: Array<[string, string]>;
}

/** The attrs fields (6) of every entry, encoded once: what the shim gets as --log-attrs-pb (hex). */
export function encodeLogAttrs(attrs: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  const sorted = Object.entries(attrs).sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : 1));
  for (const [k, v] of sorted) {
    const m: Buffer[] = [];
    if (k) lenField(m, 1, Buffer.from(k));
    if (v) lenField(m, 2, Buffer.from(v));
    lenField(parts, 6, Buffer.concat(m));
  }
  return Buffer.concat(parts);
}

// ---- protobuf (just what entry.proto needs) ----------------------------------

function varint(out: number[], v: bigint): void {
  let x = BigInt.asUintN(64, v);
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    out.push(b);
  } while (x);
}

function lenField(parts: Buffer[], field: number, data: Buffer): void {
  const h: number[] = [];
  varint(h, BigInt((field << 3) | 2));
  varint(h, BigInt(data.length));
  parts.push(Buffer.from(h), data);
}

/** One framed message: size, LogEntry, size (proto3: default values omitted). */
export function encodeLocalEntry(e: LocalEntry): Buffer {
  const parts: Buffer[] = [];
  if (e.source) lenField(parts, 1, Buffer.from(e.source));
  if (e.timeNano !== 0n) {
    const h: number[] = [2 << 3];
    varint(h, e.timeNano);
    parts.push(Buffer.from(h));
  }
  if (e.line.length) lenField(parts, 3, e.line);
  if (e.partial) parts.push(Buffer.from([4 << 3, 1]));
  if (e.partialMeta) {
    const m: Buffer[] = [];
    if (e.partialMeta.last) m.push(Buffer.from([1 << 3, 1]));
    if (e.partialMeta.id) lenField(m, 2, Buffer.from(e.partialMeta.id));
    if (e.partialMeta.ordinal) {
      const h: number[] = [3 << 3];
      varint(h, BigInt(e.partialMeta.ordinal));
      m.push(Buffer.from(h));
    }
    lenField(parts, 5, Buffer.concat(m));
  }
  if (e.attrs?.length) parts.push(encodeLogAttrs(Object.fromEntries(e.attrs)));
  const body = Buffer.concat(parts);
  const out = Buffer.allocUnsafe(body.length + 8);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(body.length, body.length + 4);
  return out;
}

class Reader {
  p: number;
  constructor(
    readonly b: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.p = start;
  }
  varint(): bigint {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (this.p >= this.end) throw new Error('truncated varint');
      const c = this.b[this.p++]!;
      v |= BigInt(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
      shift += 7n;
      if (shift > 63n) throw new Error('varint overflow');
    }
  }
  /** A varint that fits a JS number exactly (keys, lengths, small ints): no BigInt on the hot path. */
  num(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.p >= this.end) throw new Error('truncated varint');
      const c = this.b[this.p++]!;
      v += (c & 0x7f) * mul;
      if (!(c & 0x80)) return v;
      mul *= 128;
    }
    throw new Error('varint too large');
  }
  /** An int64 varint: the low 28 bits and the rest as numbers, one BigInt at the end. */
  int64(): bigint {
    let lo = 0;
    let i = 0;
    for (; i < 4; i++) {
      if (this.p >= this.end) throw new Error('truncated varint');
      const c = this.b[this.p++]!;
      lo |= (c & 0x7f) << (7 * i);
      if (!(c & 0x80)) return BigInt(lo);
    }
    let hi = 0n;
    let shift = 0n;
    for (;;) {
      if (this.p >= this.end) throw new Error('truncated varint');
      const c = this.b[this.p++]!;
      hi |= BigInt(c & 0x7f) << shift;
      if (!(c & 0x80)) break;
      shift += 7n;
      if (shift > 42n) throw new Error('varint overflow');
    }
    return BigInt.asIntN(64, (hi << 28n) | BigInt(lo >>> 0));
  }
  bytes(): Buffer {
    const n = this.num();
    if (this.p + n > this.end) throw new Error('truncated field');
    const s = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return s;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.p += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.p += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

/** Decodes a LogEntry message body (without the size frame). Unknown fields (moby's attrs=6) are skipped. */
export function decodeLogEntry(b: Buffer, start = 0, end = b.length): LocalEntry {
  const r = new Reader(b, start, end);
  const e: LocalEntry = { source: '', timeNano: 0n, line: Buffer.alloc(0), partial: false };
  while (r.p < end) {
    const key = r.num();
    const field = key >> 3;
    const wire = key & 7;
    if (field === 1 && wire === 2) {
      const src = r.bytes();
      // the two values the shim writes, without a string decode each
      e.source =
        src.length === 6 && src[3] === 0x6f
          ? 'stdout'
          : src.length === 6 && src[3] === 0x65
            ? 'stderr'
            : src.toString();
    } else if (field === 2 && wire === 0) e.timeNano = r.int64();
    else if (field === 3 && wire === 2) e.line = Buffer.from(r.bytes());
    else if (field === 4 && wire === 0) e.partial = r.num() !== 0;
    else if (field === 5 && wire === 2) {
      const m = r.bytes();
      const mr = new Reader(m, 0, m.length);
      const meta = { last: false, id: '', ordinal: 0 };
      while (mr.p < m.length) {
        const k = Number(mr.varint());
        if (k === 1 << 3) meta.last = mr.varint() !== 0n;
        else if (k === ((2 << 3) | 2)) meta.id = mr.bytes().toString('utf8');
        else if (k === 3 << 3) meta.ordinal = Number(BigInt.asIntN(32, mr.varint()));
        else mr.skip(k & 7);
      }
      e.partialMeta = meta;
    } else if (field === 6 && wire === 2) {
      const m = r.bytes();
      const mr = new Reader(m, 0, m.length);
      let k = '';
      let v = '';
      while (mr.p < m.length) {
        const key = Number(mr.varint());
        if (key === ((1 << 3) | 2)) k = mr.bytes().toString('utf8');
        else if (key === ((2 << 3) | 2)) v = mr.bytes().toString('utf8');
        else mr.skip(key & 7);
      }
      e.attrs ??= [];
      e.attrs.push([k, v]);
    } else r.skip(wire);
  }
  return e;
}

/** Framed entries in buf[from..end); stops at an incomplete frame (a write in progress). Returns the offset after the last complete one. */
export function decodeFrames(buf: Buffer, from: number, end: number, out: LocalEntry[]): number {
  let p = from;
  while (p + 4 <= end) {
    const n = buf.readUInt32BE(p);
    if (p + 8 + n > end) break;
    if (buf.readUInt32BE(p + 4 + n) !== n) throw new Error(`corrupt local log frame at offset ${p}`);
    out.push(decodeLogEntry(buf, p + 4, p + 4 + n));
    p += 8 + n;
  }
  return p;
}

/** RFC3339Nano as Go prints it (UTC, trailing zeros trimmed): json-file's "time". */
let lastSec = Number.NaN;
let lastIso = '';
export function nsToRfc3339Nano(ns: bigint): string {
  let sec = ns / 1_000_000_000n;
  let frac = ns % 1_000_000_000n;
  if (frac < 0n) {
    frac += 1_000_000_000n;
    sec -= 1n;
  }
  const secN = Number(sec);
  if (secN !== lastSec) {
    lastSec = secN;
    lastIso = new Date(secN * 1000).toISOString().slice(0, 19);
  }
  const iso = lastIso;
  const f = frac.toString().padStart(9, '0').replace(/0+$/, '');
  return f ? `${iso}.${f}Z` : `${iso}Z`;
}

/** The LogRecord `docker logs` prints for an entry (json-file's shape). */
export function entryToRecord(e: LocalEntry, details = false): LogRecord {
  const ends = !e.partial || !!e.partialMeta?.last;
  const rec: LogRecord = {
    stream: e.source === 'stderr' ? 'stderr' : 'stdout',
    line: ends ? Buffer.concat([e.line, Buffer.from('\n')]) : e.line,
    time: nsToRfc3339Nano(e.timeNano),
  };
  if (details && e.attrs?.length) rec.attrs = Object.fromEntries(e.attrs);
  return rec;
}

/** Rotated files present (oldest first: .N.gz or .N), then the live file. */
export function localLogFiles(logPath: string, maxFile = 5): string[] {
  const out: string[] = [];
  let n = Math.max(1, maxFile - 1);
  while (fs.existsSync(`${logPath}.${n + 1}`) || fs.existsSync(`${logPath}.${n + 1}.gz`)) n++;
  for (let i = n; i >= 1; i--) {
    // both exist only mid-compression: the plain file is complete, the .gz may not be
    if (fs.existsSync(`${logPath}.${i}`)) out.push(`${logPath}.${i}`);
    else if (fs.existsSync(`${logPath}.${i}.gz`)) out.push(`${logPath}.${i}.gz`);
  }
  out.push(logPath);
  return out;
}

/**
 * gzip with moby's header metadata: the FEXTRA field holds
 * `{"lastTime":"<RFC3339Nano of the file's last entry>"}` (loggerutils
 * rotateFileMetadata; moby skips a compressed file whose lastTime is before
 * `since`). The gzip trailer's CRC covers the data only, so the extra field is
 * spliced into node's 10-byte header.
 */
export function gzipWithLastTime(data: Buffer): Buffer {
  const gz = zlib.gzipSync(data);
  const last = lastEntryTime(data);
  if (last === undefined || gz[3] !== 0) return gz;
  const extra = Buffer.from(JSON.stringify({ lastTime: nsToRfc3339Nano(last) }));
  const xlen = Buffer.alloc(2);
  xlen.writeUInt16LE(extra.length, 0);
  const head = Buffer.from(gz.subarray(0, 10));
  head[3] = 0x04; // FEXTRA
  return Buffer.concat([head, xlen, extra, gz.subarray(10)]);
}

/** The time of the last complete entry (read from the end: its trailing size frame). */
function lastEntryTime(data: Buffer): bigint | undefined {
  if (data.length < 8) return undefined;
  const n = data.readUInt32BE(data.length - 4);
  const start = data.length - 8 - n;
  if (start < 0 || data.readUInt32BE(start) !== n) return undefined;
  try {
    return decodeLogEntry(data, start + 4, start + 4 + n).timeNano;
  } catch {
    return undefined;
  }
}

/** moby's lastTime from a compressed file's gzip header, in ns (undefined when absent). */
export function gzipLastTime(gz: Buffer): bigint | undefined {
  if (gz.length < 12 || gz[0] !== 0x1f || gz[1] !== 0x8b || !(gz[3]! & 0x04)) return undefined;
  const xlen = gz.readUInt16LE(10);
  try {
    const j = JSON.parse(gz.toString('utf8', 12, 12 + xlen)) as { lastTime?: string };
    return j.lastTime ? parseRfc3339Ns(j.lastTime) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * gzips `<log>.1` to `<log>.1.gz` (moby names compressed rotated files so).
 * Written to a temp name, renamed only if `<log>.1` is still the file that was
 * read (the shim may rotate meanwhile; then the next call compresses the new
 * `.1`, and the shifted plain file is read as is). Also compresses older plain
 * files left by a daemon that stopped before compressing them.
 */
export function compressRotated(logPath: string, maxFile = 5): void {
  for (let i = Math.max(1, maxFile - 1); i >= 1; i--) {
    const src = `${logPath}.${i}`;
    let fd: number;
    try {
      fd = fs.openSync(src, 'r');
    } catch {
      continue;
    }
    try {
      const ino = fs.fstatSync(fd).ino;
      const data = fs.readFileSync(fd);
      const gz = gzipWithLastTime(data);
      const tmp = `${src}.gz.tmp`;
      fs.writeFileSync(tmp, gz, { mode: 0o640 });
      let same = false;
      try {
        same = fs.statSync(src).ino === ino;
      } catch {
        same = false;
      }
      if (same) {
        fs.renameSync(tmp, `${src}.gz`);
        fs.rmSync(src, { force: true });
      } else fs.rmSync(tmp, { force: true });
    } catch {
      // next round
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * While a local-driver container runs: compress rotated files as the shim
 * makes them (fs.watch on local-logs/, with a slow poll as a fallback).
 * Returns a stop function that compresses once more.
 */
export function watchLocalLog(logPath: string, maxFile: number): () => void {
  const dir = logPath.slice(0, logPath.lastIndexOf('/'));
  let pending = false;
  const run = () => {
    if (pending) return;
    pending = true;
    setTimeout(() => {
      pending = false;
      compressRotated(logPath, maxFile);
    }, 50).unref();
  };
  let w: fs.FSWatcher | undefined;
  try {
    w = fs.watch(dir, (_ev, name) => {
      if (name && /\.log\.\d+$/.test(String(name))) run();
    });
    w.on('error', () => {});
    w.unref(); // never keeps berthd alive at shutdown
  } catch {
    w = undefined;
  }
  const t = setInterval(run, 5000);
  t.unref();
  return () => {
    w?.close();
    clearInterval(t);
    compressRotated(logPath, maxFile);
  };
}

/** The offset after the last complete frame in buf[0..len) (sizes only, nothing decoded). */
function completeEnd(buf: Buffer, len: number): number {
  let p = 0;
  while (p + 4 <= len) {
    const n = buf.readUInt32BE(p);
    if (p + 8 + n > len) break;
    p += 8 + n;
  }
  return p;
}

/** A file's content; null for a compressed file whose header says it ends before `since` (moby skips those too). */
function readWhole(p: string, since?: bigint): Buffer | null {
  const b = fs.readFileSync(p);
  if (!p.endsWith('.gz')) return b;
  if (since !== undefined) {
    const last = gzipLastTime(b);
    if (last !== undefined && last < since) return null;
  }
  return zlib.gunzipSync(b);
}

/**
 * Reads a container's local-driver log with readJsonLog's options and
 * records. Rotated files are read whole (they are at most max-size each).
 */
export async function* readLocalLog(logPath: string, opts: ReadLogsOptions = {}): AsyncGenerator<LogRecord[]> {
  const out = opts.stdout !== false;
  const err = opts.stderr !== false;
  const since = opts.since !== undefined && opts.since > 0n ? opts.since : undefined;
  const until = opts.until !== undefined && opts.until > 0n ? opts.until : undefined;
  let pastUntil = false;
  const select = (entries: LocalEntry[]): LogRecord[] => {
    const recs: LogRecord[] = [];
    for (const e of entries) {
      if (until !== undefined && e.timeNano > until) {
        pastUntil = true;
        break;
      }
      if (since !== undefined && e.timeNano < since) continue;
      if (e.source === 'stderr' ? err : out) recs.push(entryToRecord(e, !!opts.details));
    }
    return recs;
  };

  // open the live file first: a rotation while reading must not lose it
  const live: LiveFile = { fd: -1, ino: 0, pos: 0 };
  try {
    live.fd = fs.openSync(logPath, 'r');
    live.ino = fs.fstatSync(live.fd).ino;
  } catch {
    live.fd = -1;
  }
  try {
    const files = localLogFiles(logPath, opts.maxFile).slice(0, -1);
    const tail = opts.tail !== undefined && opts.tail >= 0 ? opts.tail : undefined;
    const bufs: Array<{ b: Buffer; end: number }> = [];
    for (const p of files) {
      try {
        // tail counts entries before since filters them: only skip files when no tail is asked
        const b = readWhole(p, tail !== undefined ? undefined : since);
        if (b) bufs.push({ b, end: completeEnd(b, b.length) });
      } catch {
        // rotated away (or being compressed) while listing
      }
    }
    if (live.fd >= 0) {
      const size = fs.fstatSync(live.fd).size;
      const b = Buffer.allocUnsafe(size);
      const n = size ? fs.readSync(live.fd, b, 0, size, 0) : 0;
      live.pos = completeEnd(b, n);
      bufs.push({ b, end: live.pos });
    }
    // tail: walk back over the trailing size fields, decoding only what is printed
    const starts = bufs.map((x) => (tail !== undefined ? x.end : 0));
    if (tail !== undefined) {
      let need = tail;
      for (let i = bufs.length - 1; i >= 0 && need > 0; i--) {
        const { b } = bufs[i]!;
        let p = bufs[i]!.end;
        while (need > 0 && p >= 8) {
          p -= b.readUInt32BE(p - 4) + 8;
          need--;
        }
        starts[i] = Math.max(0, p);
      }
    }
    for (let i = 0; i < bufs.length && !pastUntil; i++) {
      const entries: LocalEntry[] = [];
      decodeFrames(bufs[i]!.b, starts[i]!, bufs[i]!.end, entries);
      const recs = select(entries);
      if (recs.length) yield recs;
    }
    if (!opts.follow || pastUntil || opts.signal?.aborted) return;

    if (live.fd < 0) {
      live.fd = await openWhenExists(logPath, opts);
      if (live.fd < 0) return;
      live.ino = fs.fstatSync(live.fd).ino;
      live.pos = 0;
    }
    yield* followLog(logPath, live, opts, {
      *read(fd, pos, size) {
        const b = Buffer.allocUnsafe(size - pos);
        const n = fs.readSync(fd, b, 0, b.length, pos);
        const entries: LocalEntry[] = [];
        const end = pos + decodeFrames(b, 0, n, entries);
        const recs = select(entries);
        if (recs.length) yield recs;
        return end;
      },
      pastUntil: () => pastUntil,
      untilBefore: (nowNs) => until !== undefined && nowNs > until,
    });
  } finally {
    if (live.fd >= 0) {
      try {
        fs.closeSync(live.fd);
      } catch {
        // closed
      }
    }
  }
}

/** moby's local-driver file: `<container dir>/local-logs/container.log`. */
export function localLogPath(c: { path(rel: string): string }): string {
  return c.path('local-logs/container.log');
}
