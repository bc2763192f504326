// Worker side of applyLayerOffThread (apply-threaded.ts): runs applyLayer on
// the tar chunks the main thread posts, one job at a time.
//   main → worker: {t:'start', dest, opts} · {t:'data', chunk} · {t:'end'} · {t:'abort', message}
//   worker → main: {t:'ack', n} (bytes taken by the extractor) · {t:'done', result} · {t:'error', err}
import { pipeline, Readable } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import zlib from 'node:zlib';
import { BerthError } from '../errors/index.js';
import { type ApplyOptions, applyLayer } from './apply.js';
import { decompressor } from './compression.js';

export type ToWorker =
  | { t: 'start'; dest: string; opts: Omit<ApplyOptions, 'signal'>; compression?: 'gzip' | 'zstd' }
  | { t: 'data'; chunk: Uint8Array }
  | { t: 'end' }
  | { t: 'abort'; message: string };

export interface SerializedError {
  message: string;
  kind?: string;
  code?: string;
}

export type FromWorker =
  | { t: 'ack'; n: number }
  | { t: 'done'; result: { diffId: string; tarSize: number; size: number } }
  | { t: 'error'; err: SerializedError };

const port = parentPort!;

interface Job {
  queue: Buffer[];
  ended: boolean;
  failed?: Error;
  wake?: () => void;
}

let job: Job | undefined;

function poke(j: Job): void {
  const w = j.wake;
  j.wake = undefined;
  w?.();
}

async function* chunks(j: Job): AsyncGenerator<Buffer> {
  for (;;) {
    if (j.failed) throw j.failed;
    const c = j.queue.shift();
    if (c) {
      port.postMessage({ t: 'ack', n: c.length } satisfies FromWorker);
      yield c;
      continue;
    }
    if (j.ended) return;
    await new Promise<void>((r) => {
      j.wake = r;
    });
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'start': {
      const j: Job = { queue: [], ended: false };
      job = j;
      const src = Readable.from(chunks(j), { objectMode: false, highWaterMark: 1 << 20 });
      let tar: Readable = src;
      if (m.compression) {
        const dec =
          m.compression === 'gzip'
            ? zlib.createGunzip({
                chunkSize: 512 << 10,
                // one output chunk buffered: the extractor reads whole chunks (no concatenation), zlib works on the next
                readableHighWaterMark: 512 << 10,
                writableHighWaterMark: 1 << 20,
              } as zlib.ZlibOptions)
            : decompressor('zstd')!;
        // a decompression error reaches applyLayer through `dec`
        pipeline(src, dec, () => {});
        tar = dec;
      }
      applyLayer(tar, m.dest, m.opts).then(
        (result) => {
          job = undefined;
          port.postMessage({ t: 'done', result } satisfies FromWorker);
        },
        (e: unknown) => {
          job = undefined;
          const err: SerializedError = { message: (e as Error)?.message ?? String(e) };
          if (e instanceof BerthError) err.kind = e.kind;
          const code = (e as { code?: unknown })?.code;
          if (typeof code === 'string') err.code = code;
          port.postMessage({ t: 'error', err } satisfies FromWorker);
        },
      );
      break;
    }
    case 'data':
      if (!job) break;
      job.queue.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
      poke(job);
      break;
    case 'end':
      if (!job) break;
      job.ended = true;
      poke(job);
      break;
    case 'abort':
      if (!job) break;
      job.failed = new BerthError('cancelled', m.message);
      job.queue = [];
      poke(job);
      break;
  }
});
