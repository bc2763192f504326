// Upload sessions: `_uploads/<id>/{data,startedat}`. Data is appended in
// order; the commit verifies digest (and size) BEFORE the data is moved into
// the blob store, so no blob ever exists whose bytes do not match its name.
// Commit sequence (as distribution's blobwriter): verify → move → link → remove
// the upload directory.
import { createHash, type Hash, randomUUID } from 'node:crypto';
import { KeyedMutex } from '../../concurrency/index.js';
import { type Digest, digestAlgorithm } from '../../oci/index.js';
import { regError } from '../errors.js';
import type { BlobDescriptor, BlobStore } from './blobs.js';
import { type FileWriter, isPathNotFound, type StorageDriver } from './driver.js';
import type { WriteGate } from './gate.js';
import { pathFor } from './paths.js';

export interface UploadStatus {
  id: string;
  name: string;
  size: number;
  startedAt: Date;
}

/** Go's time.RFC3339 in UTC, as distribution writes `startedat`. */
export function formatStartedAt(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const MAX_HASH_STATES = 4096;
/** Bytes of a body buffered while the previous write is in flight before reading pauses. */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

async function writeEach(w: FileWriter, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) await w.write(c);
}

export class UploadStore {
  /** Running sha256 of each upload this process has seen from byte 0 (key name\0id). */
  private readonly hashes = new Map<string, { hash: Hash; offset: number }>();
  private readonly lock = new KeyedMutex();

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
    private readonly gate?: WriteGate,
  ) {}

  async create(name: string): Promise<UploadStatus> {
    const id = randomUUID();
    const startedAt = new Date();
    // A session is not worth an fsync: lost in a crash, the client starts the upload again.
    await this.driver.putContent(pathFor({ kind: 'uploadStartedAt', name, id }), formatStartedAt(startedAt), {
      sync: false,
    });
    const w = await this.driver.writer(pathFor({ kind: 'uploadData', name, id }), false);
    await w.commit({ sync: false });
    this.remember(name, id, createHash('sha256'), 0);
    return { id, name, size: 0, startedAt };
  }

  async status(name: string, id: string): Promise<UploadStatus> {
    let started: string;
    try {
      started = (await this.driver.getContent(pathFor({ kind: 'uploadStartedAt', name, id }))).toString('utf8');
    } catch (e) {
      if (isPathNotFound(e)) throw regError('BLOB_UPLOAD_UNKNOWN', { id });
      throw e;
    }
    let size = 0;
    try {
      size = (await this.driver.stat(pathFor({ kind: 'uploadData', name, id }))).size;
    } catch (e) {
      if (!isPathNotFound(e)) throw e;
    }
    return { id, name, size, startedAt: new Date(started) };
  }

  /**
   * Appends a chunk. `start` (from Content-Range) must equal the current size,
   * else 416 with the current Range. Returns the new status.
   */
  append(
    name: string,
    id: string,
    body: AsyncIterable<Buffer>,
    opts: { start?: number; end?: number; length?: number } = {},
  ): Promise<UploadStatus> {
    return this.lock.run(`${name}\0${id}`, () => this.appendLocked(name, id, body, opts));
  }

  private async appendLocked(
    name: string,
    id: string,
    body: AsyncIterable<Buffer>,
    opts: { start?: number; end?: number; length?: number },
  ): Promise<UploadStatus> {
    const st = await this.status(name, id);
    if (opts.start !== undefined && opts.start !== st.size) {
      throw regError(
        'BLOB_UPLOAD_INVALID',
        { expectedStart: st.size, gotStart: opts.start },
        {
          status: 416,
          message: 'chunk out of order: Content-Range does not start at the end of the upload',
          headers: rangeHeaders(name, id, st.size),
        },
      );
    }
    const key = `${name}\0${id}`;
    const hs = this.hashes.get(key);
    const hash = hs && hs.offset === st.size ? hs.hash : undefined;
    this.hashes.delete(key); // re-added only if every byte was hashed and written
    const w = await this.driver.writer(pathFor({ kind: 'uploadData', name, id }), true);
    let wrote = 0;
    const limit = opts.length;
    // The body keeps being read while the previous batch is written: chunks that arrive
    // meanwhile are written together by the next call (one writev instead of one write each).
    const queued: Buffer[] = [];
    let queuedBytes = 0;
    let inflight: Promise<void> | undefined;
    const ws: { failure?: { e: unknown } } = {}; // set by a write's callback
    const check = () => {
      if (ws.failure) throw ws.failure.e;
    };
    const flush = () => {
      const batch = queued.splice(0);
      queuedBytes = 0;
      const p = (w.writev && batch.length > 1 ? w.writev(batch) : writeEach(w, batch)).then(
        () => {
          if (inflight === p) inflight = undefined;
        },
        (e: unknown) => {
          ws.failure ??= { e };
          if (inflight === p) inflight = undefined;
        },
      );
      inflight = p;
    };
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        check();
        if (limit !== undefined && wrote + chunk.length > limit) {
          throw regError('SIZE_INVALID', { declared: limit }, { message: 'chunk is larger than its declared length' });
        }
        hash?.update(chunk);
        wrote += chunk.length;
        queued.push(chunk);
        queuedBytes += chunk.length;
        if (!inflight) flush();
        else if (queuedBytes >= MAX_QUEUED_BYTES) {
          await inflight; // backpressure: the socket is not read while this much waits for the disk
          check();
          flush();
        }
      }
      while (inflight || queued.length) {
        if (inflight) await inflight;
        check();
        if (queued.length) flush();
      }
      // No fsync per chunk: the data is synced once, before the commit makes it a blob.
      await w.commit({ sync: false });
    } catch (e) {
      if (inflight) await inflight;
      await w.close().catch(() => {});
      throw e;
    }
    if (hash) this.remember(name, id, hash, st.size + wrote);
    if (limit !== undefined && wrote !== limit) {
      throw regError(
        'SIZE_INVALID',
        { declared: limit, received: wrote },
        { message: 'chunk is shorter than its declared length', headers: rangeHeaders(name, id, st.size + wrote) },
      );
    }
    return { ...st, size: st.size + wrote };
  }

  /** Finishes an upload: appends the final chunk, verifies, moves, links, cleans up. */
  commit(
    name: string,
    id: string,
    digest: Digest,
    body: AsyncIterable<Buffer> | undefined,
    opts: { length?: number } = {},
  ): Promise<BlobDescriptor> {
    return this.lock.run(`${name}\0${id}`, async () => {
      let st = await this.status(name, id);
      if (body) st = await this.appendLocked(name, id, body, opts);
      const dataPath = pathFor({ kind: 'uploadData', name, id });
      const got = await this.digestOf(name, id, dataPath, st.size, digestAlgorithm(digest));
      if (got !== digest) {
        await this.removeUpload(name, id);
        throw regError(
          'DIGEST_INVALID',
          { expected: digest, computed: got },
          { message: 'provided digest did not match uploaded content' },
        );
      }
      const publish = async () => {
        const existing = await this.blobs.stat(digest);
        if (!existing) {
          // Durable bytes first, then the rename makes them visible under their digest.
          await (await this.driver.writer(dataPath, true)).commit();
          await this.driver.move(dataPath, pathFor({ kind: 'blobData', digest }));
        }
        await this.blobs.linkInRepo(name, digest);
      };
      // As a writer of the gate: a collection running in the server cannot sweep between stat and link.
      if (this.gate) await this.gate.write(() => [digest], publish);
      else await publish();
      await this.removeUpload(name, id);
      return { digest, size: st.size };
    });
  }

  cancel(name: string, id: string): Promise<void> {
    return this.lock.run(`${name}\0${id}`, async () => {
      await this.status(name, id);
      await this.removeUpload(name, id);
    });
  }

  private async removeUpload(name: string, id: string): Promise<void> {
    this.hashes.delete(`${name}\0${id}`);
    try {
      await this.driver.delete(pathFor({ kind: 'uploadDir', name, id }));
    } catch (e) {
      if (!isPathNotFound(e)) throw e;
    }
  }

  private async digestOf(name: string, id: string, dataPath: string, size: number, alg: string): Promise<Digest> {
    const hs = this.hashes.get(`${name}\0${id}`);
    if (alg === 'sha256' && hs && hs.offset === size) return `sha256:${hs.hash.copy().digest('hex')}` as Digest;
    // Resumed in another process (or another algorithm): hash the data again.
    const h = createHash(alg);
    if (size > 0) for await (const chunk of await this.driver.reader(dataPath, 0)) h.update(chunk as Buffer);
    return `${alg}:${h.digest('hex')}` as Digest;
  }

  private remember(name: string, id: string, hash: Hash, offset: number): void {
    const key = `${name}\0${id}`;
    this.hashes.delete(key);
    this.hashes.set(key, { hash, offset });
    if (this.hashes.size > MAX_HASH_STATES) {
      const oldest = this.hashes.keys().next().value;
      if (oldest !== undefined) this.hashes.delete(oldest);
    }
  }
}

/** The headers that describe an upload's progress (Location, Range, Docker-Upload-UUID). */
export function rangeHeaders(name: string, id: string, size: number): Record<string, string> {
  return {
    Location: `/v2/${name}/blobs/uploads/${id}`,
    Range: `0-${size > 0 ? size - 1 : 0}`,
    'Docker-Upload-UUID': id,
  };
}
