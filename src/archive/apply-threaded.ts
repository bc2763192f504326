// applyLayer on a worker thread. Extraction is synchronous file-system work
// (create, write, chown, utimes: mostly kernel time, a lot of it in inode
// allocation); on the main thread two layers extracted "at once" still take
// turns. A worker per layer lets the extractions of different layers (a pull's
// concurrent downloads) run on different cores, while the main thread keeps
// the network, the digests and the decompression moving.
//
// The main thread reads `tar` and posts its chunks (transferred when the
// caller says they are its own, else copied once); at most MAX_INFLIGHT bytes
// are posted and not yet taken by the extractor, so backpressure reaches the
// producer. With `compression` the stream is still compressed and the worker
// decompresses it (the main thread then carries fewer bytes and no zlib
// callbacks). Results and errors come back as plain data; BerthError kinds are
// kept. Idle workers are kept (unreferenced) for the next layer, for IDLE_MS.
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { BerthError, type ErrorKind } from '../errors/index.js';
import type { Digest } from '../oci/index.js';
import type { ApplyOptions, ApplyResult } from './apply.js';
import type { FromWorker, SerializedError, ToWorker } from './apply-worker.js';

const MAX_INFLIGHT = 8 << 20;
const MAX_IDLE = 4;
/** An idle worker is ended after this long unused (an idle daemon keeps no extraction threads). */
const IDLE_MS = 30_000;
const idle: Worker[] = [];
const idleTimers = new Map<Worker, NodeJS.Timeout>();

function parkIdle(w: Worker): void {
  w.unref();
  idle.push(w);
  const t = setTimeout(() => {
    idleTimers.delete(w);
    const i = idle.indexOf(w);
    if (i >= 0) {
      idle.splice(i, 1);
      void w.terminate();
    }
  }, IDLE_MS);
  t.unref();
  idleTimers.set(w, t);
}

function takeIdle(): Worker | undefined {
  const w = idle.pop();
  if (w) {
    clearTimeout(idleTimers.get(w));
    idleTimers.delete(w);
  }
  return w;
}

function spawnWorker(): Worker {
  const w = new Worker(new URL('./apply-worker.js', import.meta.url));
  // a worker that dies while idle is never handed out
  const forget = () => {
    const i = idle.indexOf(w);
    if (i >= 0) idle.splice(i, 1);
    clearTimeout(idleTimers.get(w));
    idleTimers.delete(w);
  };
  w.once('exit', forget);
  w.on('error', forget);
  return w;
}

/** Starts idle workers ahead of need (up to `n` idle in all), e.g. while a pull fetches its manifest. */
export function prewarmApplyWorkers(n: number): void {
  while (idle.length < Math.min(n, MAX_IDLE)) {
    parkIdle(spawnWorker());
  }
}

export interface OffThreadOptions extends ApplyOptions {
  /** `tar` is compressed so: the worker decompresses it (diffId and tarSize are of the uncompressed tar). */
  compression?: 'gzip' | 'zstd' | 'none';
  /** The chunks of `tar` belong to nobody else once read: whole-ArrayBuffer chunks are transferred, not copied. */
  transferChunks?: boolean;
}

function deserialize(e: SerializedError): Error {
  if (e.kind) return new BerthError(e.kind as ErrorKind, e.message);
  const err = new Error(e.message) as Error & { code?: string };
  if (e.code) err.code = e.code;
  return err;
}

/** Same contract as applyLayer (the tar is consumed; destroyed on failure), run on a worker thread. */
export async function applyLayerOffThread(tar: Readable, dest: string, opts: OffThreadOptions): Promise<ApplyResult> {
  if (opts.signal?.aborted) {
    tar.destroy();
    throw new BerthError('cancelled', 'layer extraction cancelled');
  }
  const w = takeIdle() ?? spawnWorker();
  w.ref();
  let inflight = 0;
  let waiter: (() => void) | undefined;
  let settled = false;
  let broken = false;
  let resolveDone!: (r: ApplyResult) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<ApplyResult>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  done.catch(() => {});
  const wakeup = () => {
    const f = waiter;
    waiter = undefined;
    f?.();
  };
  const onMessage = (m: FromWorker) => {
    if (m.t === 'ack') {
      inflight -= m.n;
      if (inflight <= MAX_INFLIGHT / 2) wakeup();
      return;
    }
    if (m.t === 'done') {
      settled = true;
      resolveDone({ ...m.result, diffId: m.result.diffId as Digest });
      wakeup();
    } else fail(deserialize(m.err));
  };
  // the job failed: stop reading (the reader may be waiting for input that never comes)
  let failure: Error | undefined;
  const fail = (e: Error) => {
    settled = true;
    failure = e;
    rejectDone(e);
    wakeup();
    tar.destroy();
  };
  const onError = (e: Error) => {
    broken = true;
    fail(new BerthError('internal', `layer extraction worker failed: ${e.message}`, { cause: e }));
  };
  const onExit = (code: number) => onError(new Error(`exited with code ${code}`));
  w.on('message', onMessage);
  w.on('error', onError);
  w.on('exit', onExit);
  const post = (m: ToWorker, transfer?: ArrayBuffer[]) => w.postMessage(m, transfer);
  const { signal: _signal, compression, transferChunks, ...plain } = opts;
  const onAbort = () => post({ t: 'abort', message: 'layer extraction cancelled' });
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  post({ t: 'start', dest, opts: plain, ...(compression && compression !== 'none' ? { compression } : {}) });
  try {
    try {
      // flowing mode: chunks arrive as written (a read() loop would concatenate what is buffered: a copy)
      await new Promise<void>((resolve, reject) => {
        let ended = false;
        tar.on('data', (c: Buffer) => {
          if (settled) return;
          let u: Uint8Array;
          if (transferChunks && c.byteOffset === 0 && c.byteLength === c.buffer.byteLength && c.byteLength >= 4096) {
            u = c;
          } else {
            u = Buffer.allocUnsafeSlow(c.length);
            u.set(c);
          }
          inflight += u.length;
          post({ t: 'data', chunk: u }, [u.buffer as ArrayBuffer]);
          if (inflight > MAX_INFLIGHT && !settled) {
            tar.pause();
            waiter = () => {
              if (!settled) tar.resume();
            };
          }
        });
        tar.once('end', () => {
          ended = true;
          resolve();
        });
        tar.once('error', reject);
        tar.once('close', () => {
          if (ended || settled) resolve();
          else reject(new Error('layer stream closed before its end'));
        });
      });
      if (!settled) post({ t: 'end' });
    } catch (e) {
      if (failure) throw failure; // we destroyed the stream because the job had failed
      // the tar stream failed (a bad gzip stream, a cancelled download): stop the worker's job
      if (!settled) post({ t: 'abort', message: (e as Error).message });
      await done.catch(() => {});
      throw e instanceof BerthError ? e : new BerthError('internal', (e as Error).message, { cause: e });
    }
    return await done;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    w.off('message', onMessage);
    w.off('error', onError);
    w.off('exit', onExit);
    if (!broken && settled && idle.length < MAX_IDLE) parkIdle(w);
    else void w.terminate();
  }
}
