// Following a live log file across rotation and truncation: the loop the
// json-file and local readers share. Each reader supplies how to decode a
// range of the file; this module owns polling, rotation and the end rules.
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReadLogsOptions } from './jsonfile.js';

/** The file being followed. The caller closes `fd` when done; followLog replaces it (closing the old one) on rotation. */
export interface LiveFile {
  fd: number;
  ino: number;
  /** The offset after the last complete entry read. */
  pos: number;
}

export interface FollowReader<T> {
  /** Reads fd[pos..size): yields batches, returns the offset after the last complete entry. */
  read(fd: number, pos: number, size: number): Iterator<T, number, undefined> | AsyncIterator<T, number, undefined>;
  /** True once an entry after `until` was seen. */
  pastUntil(): boolean;
  /** True when `until` is set and lies before nowNs (nanoseconds since the epoch). */
  untilBefore(nowNs: bigint): boolean;
}

/**
 * Keeps reading `live` as the writer appends, until `stopped` resolves (after
 * one last read), `until` passes, or `signal` aborts. When logPath names a new
 * file (rotation), what was appended to the old one is read first, then the
 * new one from its start; a file that shrank (truncated in place, max-file 1)
 * is read again from its start.
 */
export async function* followLog<T>(
  logPath: string,
  live: LiveFile,
  opts: Pick<ReadLogsOptions, 'stopped' | 'signal' | 'pollMs'>,
  reader: FollowReader<T>,
): AsyncGenerator<T> {
  let stopped = false;
  opts.stopped?.then(
    () => {
      stopped = true;
    },
    () => {
      stopped = true;
    },
  );
  const pollMs = opts.pollMs ?? 100;
  for (;;) {
    const finalRound = stopped;
    const size = fs.fstatSync(live.fd).size;
    if (size < live.pos) live.pos = 0; // truncated in place (max-file 1)
    if (size > live.pos) {
      const it = reader.read(live.fd, live.pos, size);
      let r = await it.next();
      while (!r.done) {
        yield r.value;
        r = await it.next();
      }
      live.pos = r.value;
    }
    if (reader.pastUntil() || opts.signal?.aborted) return;
    // rotated? finish the old file (done above), then switch to the new one
    let cur: fs.Stats | undefined;
    try {
      cur = fs.statSync(logPath);
    } catch {
      cur = undefined;
    }
    if (cur && cur.ino !== live.ino) {
      if (fs.fstatSync(live.fd).size > live.pos) continue; // the writer appended before rotating: read that first
      const nfd = fs.openSync(logPath, 'r');
      const old = live.fd;
      live.fd = nfd;
      live.pos = 0;
      try {
        fs.closeSync(old);
      } catch {
        // closed
      }
      live.ino = fs.fstatSync(nfd).ino;
      continue;
    }
    if (finalRound) return;
    if (reader.untilBefore(BigInt(Date.now()) * 1_000_000n)) return;
    try {
      await sleep(pollMs, undefined, { signal: opts.signal });
    } catch {
      return;
    }
  }
}
