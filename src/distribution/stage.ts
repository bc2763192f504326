// One layer download, streamed: registry body → sha256 of the blob (and its
// size) → decompression → LayerStore.stage(), with no spool file. A layer's
// diff directory does not depend on its parent, so every download starts
// extracting as soon as its first bytes arrive, whatever the layers below
// it are doing; the pull commits the staged layers in order afterwards
// (commitStaged). gunzip runs on libuv's thread pool, extraction on the main
// thread: with several layers in flight both cores are busy.
//
// The blob digest is only known to be right once the last byte is in, so the
// decompressor's input is ended only after verification: a lying or
// truncated blob never produces a staged layer. If extraction fails first
// (bad gzip, bad tar) the download still runs to the end, hashing only, so
// that a corrupt blob is reported as "filesystem layer verification failed"
// as dockerd reports it.
//
// Concurrent pulls of one blob share one staged layer (StageFlights, keyed by
// the blob digest). Only one pull can commit it (claim); a pull that needs the
// same blob on another parent chain stages its own copy.
import { createHash } from 'node:crypto';
import { PassThrough, type Readable, type Transform, type Writable } from 'node:stream';
import type zlib from 'node:zlib';
import { prewarmApplyWorkers } from '../archive/index.js';
import { BerthError, invalidArgument, isKind } from '../errors/index.js';
import type { LayerStore, StagedLayer } from '../layer/index.js';
import type { Compression, Descriptor } from '../oci/index.js';
import { chooseCompression, decompressor } from './decompress.js';
import { FanoutProgress, type ProgressSink, shortDigest, throttled } from './progress.js';
import { isRetryable, type RegistryTransport, type RepositoryClient } from './transport/index.js';

/** Compressed input is handed to the decompressor in pieces of about this size (fewer thread-pool round trips). */
const FEED_CHUNK = 512 << 10;
/** gunzip output chunk: the tar parser and extractor see large chunks. */
const GUNZIP_CHUNK = 512 << 10;
/** Layers from this compressed size up are extracted on a worker thread (see archive/apply-threaded.ts). */
const OFF_THREAD_MIN = 1 << 20;
/** How far decompression may run ahead of extraction (per layer). */
const READ_AHEAD = 4 << 20;

export interface StageContext {
  transport: RegistryTransport;
  layers: LayerStore;
  downloads: {
    readonly busy: boolean;
    run<T>(fn: () => Promise<T>): Promise<T>;
  };
}

/**
 * The decompressing side of one download: takes the verified-as-it-goes
 * compressed bytes, picks the decompressor from the first bytes, and feeds
 * LayerStore.stage(). write() follows Writable's contract (false: wait for
 * onDrain). Never throws: a failure of the extraction is kept in `error`.
 */
class LayerFeed {
  private sink?: Writable;
  private gunzip?: zlib.Gunzip;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private head: Buffer[] = [];
  private headLen = 0;
  /** Compressed bytes received. */
  fed = 0;
  error?: Error;
  staged?: Promise<StagedLayer>;

  constructor(
    private readonly layers: LayerStore,
    private readonly mediaType: string,
    private readonly signal: AbortSignal,
    private readonly offThread: boolean,
    private readonly onError: (e: Error) => void,
  ) {}

  /** Compressed bytes the decompressor has consumed (for "Extracting"). */
  get consumed(): number {
    if (this.gunzip) return this.gunzip.bytesWritten;
    const buffered = (this.sink?.writableLength ?? 0) + ((this.sink as PassThrough | undefined)?.readableLength ?? 0);
    return this.fed - this.pendingLen - this.headLen - buffered;
  }

  private start(head: Buffer): void {
    let kind: Compression;
    try {
      kind = chooseCompression(this.mediaType, head).kind;
    } catch (e) {
      this.fail(e as Error);
      return;
    }
    if (this.offThread) {
      // compressed bytes to the worker, which decompresses and extracts; every
      // chunk written is a fresh copy (flushPending), so it can be transferred
      const p = new PassThrough({ highWaterMark: READ_AHEAD });
      p.on('error', () => {});
      this.sink = p;
      this.staged = this.layers.stage(p, {
        signal: this.signal,
        offThread: true,
        compression: kind,
        transferChunks: true,
      });
    } else {
      const dec = decompressor(kind, { chunkSize: GUNZIP_CHUNK, highWaterMark: READ_AHEAD });
      if (kind === 'gzip') this.gunzip = dec as zlib.Gunzip;
      const tar: Transform = dec ?? new PassThrough({ highWaterMark: READ_AHEAD });
      this.sink = tar;
      // stage() reads `tar` and reports its errors (a bad gzip stream included)
      tar.on('error', () => {});
      this.staged = this.layers.stage(tar, { signal: this.signal });
    }
    this.staged.catch((e: Error) => this.fail(e));
  }

  private fail(e: Error): void {
    if (this.error) return;
    this.error = e;
    this.pending = [];
    this.pendingLen = 0;
    this.sink?.destroy(e);
    this.fireDrain();
    this.onError(e);
  }

  private drainCb: (() => void) | undefined;
  private fireDrain(): void {
    const cb = this.drainCb;
    this.drainCb = undefined;
    cb?.();
  }

  /** Feeds compressed bytes; false: wait for onDrain before the next write. */
  write(c: Buffer): boolean {
    this.fed += c.length;
    if (this.error) return true;
    if (!this.sink) {
      this.head.push(c);
      this.headLen += c.length;
      if (this.headLen < 8) return true;
      const all = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head);
      this.head = [];
      this.headLen = 0;
      this.start(all);
      if (this.error) return true;
      c = all;
    }
    if (!this.offThread && c.length >= FEED_CHUNK && this.pendingLen === 0) return this.sink!.write(c);
    this.pending.push(c);
    this.pendingLen += c.length;
    if (this.pendingLen < FEED_CHUNK) return true;
    return this.flushPending();
  }

  private flushPending(): boolean {
    if (!this.pendingLen) return true;
    // off-thread: always a fresh buffer of our own (it is transferred to the worker)
    const b =
      this.pending.length === 1 && !this.offThread ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLen);
    this.pending = [];
    this.pendingLen = 0;
    return this.sink!.write(b);
  }

  /** Calls `cb` once the decompressor wants more (or the extraction failed). */
  onDrain(cb: () => void): void {
    if (this.error || !this.sink) {
      cb();
      return;
    }
    this.drainCb = cb;
    this.sink.once('drain', () => this.fireDrain());
  }

  /** The blob is complete and verified: let the extraction finish. Resolves with the staged layer. */
  async end(): Promise<StagedLayer> {
    if (!this.error && !this.sink) {
      // fewer than 8 bytes in all
      const all = Buffer.concat(this.head);
      this.head = [];
      this.headLen = 0;
      this.start(all);
      if (!this.error) this.sink!.write(all);
    }
    if (this.error) throw this.error;
    this.flushPending();
    this.sink!.end();
    return this.staged!;
  }

  /** The download failed: stops the extraction and resolves once it has cleaned up (a layer staged anyway is discarded). */
  async abort(e: Error): Promise<void> {
    this.fail(e);
    await this.staged?.then(
      (s) => s.discard(),
      () => {},
    );
  }
}

/** Is `e` worth resuming the download after? */
function transient(e: unknown): boolean {
  return (
    isRetryable(e) ||
    (e as { code?: string }).code === 'UND_ERR_SOCKET' ||
    /terminated|other side closed|ECONNRESET/.test(String((e as Error).message))
  );
}

/**
 * Reads one response body into the feed with backpressure, hashing as it goes.
 * Resolves at the body's end; rejects on a transport error, on more bytes than
 * the manifest says, or on abort.
 */
function pump(
  body: Readable,
  feed: LayerFeed,
  state: { offset: number; hash: ReturnType<typeof createHash> },
  desc: Descriptor,
  signal: AbortSignal,
  report: (cur: number, total: number) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (e?: unknown) => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      if (e !== undefined) {
        body.destroy();
        reject(e);
      } else resolve();
    };
    const onAbort = () => finish(signal.reason ?? new BerthError('cancelled', 'download cancelled'));
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    const resume = () => {
      if (!done) body.resume();
    };
    body.on('data', (c: Buffer) => {
      if (done) return;
      if (desc.size >= 0 && state.offset + c.length > desc.size) {
        finish(
          invalidArgument(
            `filesystem layer verification failed for digest ${desc.digest}: more data than the ${desc.size} bytes the manifest says`,
          ),
        );
        return;
      }
      state.hash.update(c);
      state.offset += c.length;
      report(state.offset, desc.size);
      if (!feed.write(c)) {
        body.pause();
        feed.onDrain(resume);
      }
    });
    body.once('end', () => finish());
    body.once('error', (e) => finish(e));
    body.once('close', () => finish(new BerthError('unavailable', 'connection closed before the end of the blob')));
  });
}

/**
 * Downloads layer `desc` (resuming with Range after transient failures),
 * verifies its digest and size, and stages it. Holds a download slot until
 * the layer is staged.
 */
export function stageLayer(
  ctx: StageContext,
  repo: RepositoryClient,
  desc: Descriptor,
  progress: ProgressSink,
  signal: AbortSignal,
): Promise<StagedLayer> {
  const id = shortDigest(desc.digest);
  if (ctx.downloads.busy) progress.update(id, 'Waiting');
  return ctx.downloads.run(async () => {
    signal.throwIfAborted();
    const t = ctx.transport;
    // extraction failures stop nothing but the extraction: the download goes on, hashing
    const feed = new LayerFeed(ctx.layers, desc.mediaType, signal, desc.size >= OFF_THREAD_MIN, () => {});
    const state = { offset: 0, hash: createHash('sha256') };
    const report = throttled(progress, id, 'Downloading');
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const r = await repo.getBlob(desc.digest, state.offset, signal);
          if (state.offset > 0 && !r.partial) {
            r.body.destroy();
            throw new BerthError('unavailable', `registry does not support resuming the download of ${desc.digest}`);
          }
          report(state.offset, desc.size);
          await pump(r.body, feed, state, desc, signal, report);
          break;
        } catch (e) {
          if (signal.aborted) throw e;
          if (!transient(e) || attempt >= t.maxAttempts || isKind(e, 'invalid-argument')) {
            throw e instanceof BerthError
              ? e
              : new BerthError('unavailable', `error pulling ${desc.digest}: ${(e as Error).message}`, { cause: e });
          }
          const delay = t.retryBaseMs * 5 * attempt;
          for (let left = Math.ceil(delay / 1000); left > 0; left--)
            progress.update(id, `Retrying in ${left} second${left > 1 ? 's' : ''}`);
          await new Promise((r) => setTimeout(r, delay));
        }
      }
      progress.update(id, 'Verifying Checksum');
      const got = `sha256:${state.hash.digest('hex')}`;
      if (state.offset !== desc.size || got !== desc.digest) {
        throw invalidArgument(
          `filesystem layer verification failed for digest ${desc.digest}${state.offset !== desc.size ? `: got ${state.offset} of ${desc.size} bytes` : ''}`,
        );
      }
      progress.update(id, 'Download complete');
    } catch (e) {
      await feed.abort(e as Error);
      throw e;
    }
    // the rest of the extraction: "Extracting" counts the compressed bytes consumed
    const extracting = throttled(progress, id, 'Extracting');
    const timer = setInterval(() => extracting(Math.min(feed.consumed, desc.size), desc.size), 100);
    timer.unref();
    try {
      const staged = await feed.end();
      extracting(desc.size, desc.size, true);
      return staged;
    } finally {
      clearInterval(timer);
    }
  });
}

/** Starts extraction workers while the pull resolves its manifest (they are kept idle for later pulls). */
export function prewarmExtraction(n: number): void {
  prewarmApplyWorkers(n);
}

interface StageFlight {
  readonly key: string;
  promise: Promise<StagedLayer>;
  users: number;
  claimed: boolean;
  readonly ac: AbortController;
  readonly progress: FanoutProgress;
}

/** One pull's interest in a shared staged layer. */
export class StageTicket {
  private left = false;
  constructor(
    private readonly owner: StageFlights,
    private readonly f: StageFlight,
    private readonly sink: ProgressSink,
  ) {}

  /** Still interested (not left)? */
  get active(): boolean {
    return !this.left;
  }

  /** The staged layer (shared: commit it only after claim()). */
  get staged(): Promise<StagedLayer> {
    return this.f.promise;
  }

  /** Takes the staged layer for a commit; false when another pull took it (or this ticket left). */
  claim(): boolean {
    if (this.left || this.f.claimed) return false;
    this.f.claimed = true;
    this.owner.forget(this.f);
    return true;
  }

  /**
   * This pull no longer needs the layer. The last user's leave cancels the
   * download or discards the unclaimed staged layer; the promise resolves
   * once that is done (so a failed pull leaves nothing behind).
   */
  leave(): Promise<void> {
    if (this.left) return Promise.resolve();
    this.left = true;
    const f = this.f;
    f.users--;
    f.progress.sinks.delete(this.sink);
    if (f.users > 0 || f.claimed) return Promise.resolve();
    this.owner.forget(f);
    f.ac.abort(new BerthError('cancelled', 'layer download no longer needed'));
    return f.promise.then(
      (s) => s.discard(),
      () => {},
    );
  }
}

/** Singleflight of staged layers by blob digest. */
export class StageFlights {
  private readonly flights = new Map<string, StageFlight>();

  join(
    key: string,
    progress: ProgressSink,
    start: (p: ProgressSink, signal: AbortSignal) => Promise<StagedLayer>,
  ): StageTicket {
    let f = this.flights.get(key);
    if (!f) {
      const fan = new FanoutProgress();
      fan.sinks.add(progress);
      const flight: StageFlight = {
        key,
        promise: undefined as unknown as Promise<StagedLayer>,
        users: 0,
        claimed: false,
        ac: new AbortController(),
        progress: fan,
      };
      flight.promise = start(fan, flight.ac.signal);
      flight.promise.catch(() => this.forget(flight)); // a failed flight is never joined
      this.flights.set(key, flight);
      f = flight;
    } else f.progress.sinks.add(progress);
    f.users++;
    return new StageTicket(this, f, progress);
  }

  /** @internal */
  forget(f: StageFlight): void {
    if (this.flights.get(f.key) === f) this.flights.delete(f.key);
  }

  /** Flights in progress or staged and unclaimed (tests). */
  get size(): number {
    return this.flights.size;
  }
}
