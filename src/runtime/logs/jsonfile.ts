// Reading json-file logs for `docker logs`: tail (read backwards from the end,
// across rotated files), since/until, stdout/stderr selection, follow (across
// rotation and truncation). Lines in Docker's format are parsed without
// JSON.parse on the fast path; anything unusual falls back to JSON.parse.
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { followLog, type LiveFile } from './follow.js';

export interface LogRecord {
  stream: 'stdout' | 'stderr';
  /** The message bytes, including the trailing "\n" unless the message is partial. */
  line: Buffer;
  /** RFC3339Nano as written (UTC, trailing zeros trimmed). */
  time: string;
  /** The raw "attrs" object (labels/env/tag) when the entry has one. */
  attrs?: Record<string, string>;
}

export interface ReadLogsOptions {
  stdout?: boolean;
  stderr?: boolean;
  /** Only entries at or after this instant (nanoseconds since the epoch). */
  since?: bigint;
  /** Only entries at or before this instant (nanoseconds since the epoch); also ends follow. */
  until?: bigint;
  /** The last N entries (of all streams, like dockerd); undefined or negative: all. */
  tail?: number;
  follow?: boolean;
  /** Parse "attrs" (for `details`). */
  details?: boolean;
  /** When following: resolves when the container has stopped (read what is left, then end). */
  stopped?: Promise<unknown>;
  signal?: AbortSignal;
  /** Rotated files to consider: <path>.1 … <path>.(maxFile-1). Default 5 files, and more if present. */
  maxFile?: number;
  /** Follow polling interval (ms). */
  pollMs?: number;
}

const NL = 0x0a;
const QUOTE = 0x22;
const BSLASH = 0x5c;
const P_LOG = Buffer.from('{"log":"');
const P_STREAM_OUT = Buffer.from(',"stream":"stdout"');
const P_STREAM_ERR = Buffer.from(',"stream":"stderr"');
const P_TIME = Buffer.from(',"time":"');
const CHUNK = 1 << 20;

/** A sortable key for an RFC3339(Nano) timestamp: "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn" in UTC. */
export function timeKey(t: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(t);
  if (m) return `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}`;
  return nsToKey(parseRfc3339Ns(t));
}

/** Nanoseconds since the epoch → timeKey. */
export function nsToKey(ns: bigint): string {
  const sec = ns / 1_000_000_000n;
  const frac = ns % 1_000_000_000n;
  const iso = new Date(Number(sec) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  return `${iso.slice(0, 19)}.${frac.toString().padStart(9, '0')}`;
}

/** Parses RFC3339 with any offset and up to 9 fractional digits into ns since the epoch. */
export function parseRfc3339Ns(t: string): bigint {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return 0n;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0') || '0');
}

/** Docker's `--timestamps` form: RFC3339 with exactly 9 fractional digits. */
export function fixedTimestamp(t: string): string {
  return `${timeKey(t)}Z`;
}

/** The rotated files present for a log path, oldest first, then the live file. */
export function logFiles(logPath: string, maxFile = 5): string[] {
  const out: string[] = [];
  let n = Math.max(1, maxFile - 1);
  while (fs.existsSync(`${logPath}.${n + 1}`)) n++;
  for (let i = n; i >= 1; i--) if (fs.existsSync(`${logPath}.${i}`)) out.push(`${logPath}.${i}`);
  out.push(logPath);
  return out;
}

/** Parses one entry (a line without its "\n"); null when it is not a log entry. */
export function parseEntry(b: Buffer, details = false): LogRecord | null {
  if (b.length > P_LOG.length && b[0] === 0x7b && b.compare(P_LOG, 0, P_LOG.length, 0, P_LOG.length) === 0) {
    // find the closing quote of the "log" string
    let i = P_LOG.length;
    let esc = false;
    let end = -1;
    while (i < b.length) {
      const q = b.indexOf(QUOTE, i);
      if (q < 0) break;
      let bs = 0;
      for (let k = q - 1; k >= P_LOG.length && b[k] === BSLASH; k--) bs++;
      if (bs > 0) esc = true;
      if (bs % 2 === 0) {
        end = q;
        break;
      }
      i = q + 1;
    }
    if (end > 0) {
      if (!esc) esc = b.indexOf(BSLASH, P_LOG.length) >= 0 && b.indexOf(BSLASH, P_LOG.length) < end;
      let stream: 'stdout' | 'stderr' | undefined;
      const after = end + 1;
      if (b.compare(P_STREAM_OUT, 0, P_STREAM_OUT.length, after, after + P_STREAM_OUT.length) === 0) stream = 'stdout';
      else if (b.compare(P_STREAM_ERR, 0, P_STREAM_ERR.length, after, after + P_STREAM_ERR.length) === 0)
        stream = 'stderr';
      const tpos = b.lastIndexOf(P_TIME);
      if (stream && tpos > after && b[b.length - 1] === 0x7d && b[b.length - 2] === QUOTE) {
        const line = esc
          ? Buffer.from(JSON.parse(b.toString('utf8', P_LOG.length - 1, end + 1)) as string, 'utf8')
          : b.subarray(P_LOG.length, end);
        const time = b.toString('latin1', tpos + P_TIME.length, b.length - 2);
        const rec: LogRecord = { stream, line, time };
        const attrStart = after + P_STREAM_OUT.length;
        if (details && tpos > attrStart) {
          const a = b.toString('utf8', attrStart, tpos);
          if (a.startsWith(',"attrs":')) {
            try {
              rec.attrs = JSON.parse(a.slice(9)) as Record<string, string>;
            } catch {
              // ignore malformed attrs
            }
          }
        }
        return rec;
      }
    }
  }
  try {
    const j = JSON.parse(b.toString('utf8')) as {
      log?: string;
      stream?: string;
      time?: string;
      attrs?: Record<string, string>;
    };
    if (typeof j !== 'object' || j === null || typeof j.time !== 'string') return null;
    const rec: LogRecord = {
      stream: j.stream === 'stderr' ? 'stderr' : 'stdout',
      line: Buffer.from(j.log ?? '', 'utf8'),
      time: j.time,
    };
    if (details && j.attrs) rec.attrs = j.attrs;
    return rec;
  } catch {
    return null;
  }
}

/**
 * Offsets (per file, oldest first) where the last `n` entries begin. Reads
 * backwards in 1 MiB chunks: only the tail is touched.
 */
function tailStarts(fds: number[], sizes: number[], n: number): number[] {
  const starts = sizes.slice(); // default: nothing from each file
  let need = n;
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let f = fds.length - 1; f >= 0 && need > 0; f--) {
    let pos = sizes[f]!;
    if (pos === 0) continue;
    // a final entry without "\n" (a write in progress) is not counted
    let first = true;
    let found = -1;
    while (pos > 0 && need > 0) {
      const len = Math.min(CHUNK, pos);
      pos -= len;
      fs.readSync(fds[f]!, buf, 0, len, pos);
      let end = len;
      if (first) {
        first = false;
        // skip the terminating newline of the last entry
        if (buf[len - 1] === NL) end = len - 1;
      }
      if (end <= 0) continue;
      for (let k = buf.lastIndexOf(NL, end - 1); k >= 0 && k < end; k = k > 0 ? buf.lastIndexOf(NL, k - 1) : -1) {
        need--;
        if (need === 0) {
          found = pos + k + 1;
          break;
        }
      }
    }
    if (need === 0) {
      starts[f] = found;
      return starts;
    }
    starts[f] = 0; // the whole file is in the tail; continue with older files
    need--; // the first line of the file (no preceding "\n" in this file)
    if (need === 0) return starts;
  }
  return starts;
}

interface Filter {
  out: boolean;
  err: boolean;
  sinceKey?: string;
  untilKey?: string;
  details: boolean;
}

/** Parses complete lines in buf[0..end) into records; returns [records, pastUntil]. */
function parseChunk(buf: Buffer, end: number, f: Filter, out: LogRecord[]): boolean {
  let p = 0;
  while (p < end) {
    let nl = buf.indexOf(NL, p);
    if (nl < 0 || nl >= end) nl = end;
    if (nl > p) {
      const rec = parseEntry(buf.subarray(p, nl), f.details);
      if (rec) {
        if (f.sinceKey !== undefined || f.untilKey !== undefined) {
          const k = timeKey(rec.time);
          if (f.untilKey !== undefined && k > f.untilKey) return true;
          if (f.sinceKey !== undefined && k < f.sinceKey) {
            p = nl + 1;
            continue;
          }
        }
        if (rec.stream === 'stdout' ? f.out : f.err) {
          // copy: the chunk buffer is reused
          if (rec.line.buffer === buf.buffer) rec.line = Buffer.from(rec.line);
          out.push(rec);
        }
      }
    }
    p = nl + 1;
  }
  return false;
}

/** Reads complete entries from fd starting at `pos`; yields batches. Returns the position after the last complete line. */
async function* readFrom(
  fd: number,
  pos: number,
  limit: number,
  f: Filter,
  state: { pastUntil: boolean },
): AsyncGenerator<LogRecord[], number> {
  let carry = Buffer.alloc(0);
  const buf = Buffer.allocUnsafe(CHUNK);
  while (pos < limit && !state.pastUntil) {
    const want = Math.min(CHUNK, limit - pos);
    const n = fs.readSync(fd, buf, 0, want, pos);
    if (n <= 0) break;
    pos += n;
    const data = carry.length ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
    const lastNl = data.lastIndexOf(NL);
    if (lastNl < 0) {
      carry = Buffer.from(data);
      continue;
    }
    const recs: LogRecord[] = [];
    state.pastUntil = parseChunk(data, lastNl, f, recs);
    carry = Buffer.from(data.subarray(lastNl + 1));
    if (recs.length) yield recs;
  }
  return pos - carry.length;
}

/**
 * Reads a container's json-file log. Yields batches of records (oldest
 * first); with `follow`, keeps yielding as the shim writes (across rotation)
 * until `stopped` resolves, `until` passes, or `signal` aborts.
 */
export async function* readJsonLog(logPath: string, opts: ReadLogsOptions = {}): AsyncGenerator<LogRecord[]> {
  const f: Filter = {
    out: opts.stdout !== false,
    err: opts.stderr !== false,
    sinceKey: opts.since !== undefined && opts.since > 0n ? nsToKey(opts.since) : undefined,
    untilKey: opts.until !== undefined && opts.until > 0n ? nsToKey(opts.until) : undefined,
    details: !!opts.details,
  };
  const state = { pastUntil: false };
  // open everything first: a rotation while reading must not shift files under us
  const files = logFiles(logPath, opts.maxFile);
  const fds: number[] = [];
  /** The followed file, once follow starts (taken out of fds). */
  const live: LiveFile = { fd: -1, ino: 0, pos: 0 };
  const sizes: number[] = [];
  const inodes: number[] = [];
  for (const p of files) {
    try {
      const fd = fs.openSync(p, 'r');
      const st = fs.fstatSync(fd);
      fds.push(fd);
      sizes.push(st.size);
      inodes.push(st.ino);
    } catch {
      // rotated away or never created
    }
  }
  try {
    const tail = opts.tail;
    const starts = tail !== undefined && tail >= 0 ? tailStarts(fds, sizes, tail) : sizes.map(() => 0);
    let livePos = 0;
    for (let i = 0; i < fds.length; i++) {
      if (state.pastUntil || opts.signal?.aborted) break;
      const isLive = i === fds.length - 1 && files[files.length - 1] === logPath && inodes[i] !== undefined;
      const gen = readFrom(fds[i]!, starts[i]!, sizes[i]!, f, state);
      let r = await gen.next();
      while (!r.done) {
        yield r.value;
        r = await gen.next();
      }
      if (isLive) livePos = r.value;
    }
    if (!opts.follow || state.pastUntil || opts.signal?.aborted) return;

    // follow: the live file is the last fd if it is the current path
    const last = fds.length - 1;
    if (last >= 0 && fs.existsSync(logPath) && fs.statSync(logPath).ino === inodes[last]) {
      live.fd = fds.pop()!;
      live.ino = inodes[last]!;
      live.pos = livePos;
    } else {
      live.fd = await openWhenExists(logPath, opts);
      if (live.fd < 0) return;
      live.ino = fs.fstatSync(live.fd).ino;
      live.pos = 0;
    }
    yield* followLog(logPath, live, opts, {
      read: (fd, pos, size) => readFrom(fd, pos, size, f, state),
      pastUntil: () => state.pastUntil,
      untilBefore: (nowNs) => f.untilKey !== undefined && nsToKey(nowNs) > f.untilKey,
    });
  } finally {
    if (live.fd >= 0) fds.push(live.fd);
    for (const fd of fds) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    }
  }
}

/** Opens a log file that may not exist yet (a container that has not logged), polling until it does or the signal aborts (-1). */
export async function openWhenExists(p: string, opts: ReadLogsOptions): Promise<number> {
  for (;;) {
    try {
      return fs.openSync(p, 'r');
    } catch {
      if (opts.signal?.aborted) return -1;
      try {
        await sleep(opts.pollMs ?? 100, undefined, { signal: opts.signal });
      } catch {
        return -1;
      }
    }
  }
}
