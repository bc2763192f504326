// The hand-off between a layer download and its registration.
//
// Layers must be registered in order (layer N+1 is applied on layer N), but
// downloads run up to max-concurrent-downloads at once. A download whose
// layer may be registered right away (its parent is already registered when
// the download starts) streams straight into the layer store: no temp file,
// backpressure from extraction. A download that runs ahead of the layer
// below it would otherwise have to wait, so it spools its (still
// compressed) bytes to `<root>/tmp/pull-*`; as soon as the layer below is
// registered the registration starts reading the spool file, following it
// while the download is still writing — extraction of a layer never waits
// for its whole download, nor for any other layer's download.
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';

const READ_CHUNK = 1 << 20;

export class Spool {
  private direct?: PassThrough;
  private file?: fsp.FileHandle;
  private filePath?: string;
  private fileOpening?: Promise<void>;
  private written = 0;
  private done = false;
  private error?: Error;
  private waiters: Array<() => void> = [];
  private headBuf: Buffer[] = [];
  private headLen = 0;
  private headWaiters: Array<() => void> = [];
  private attached = false;
  /** Compressed bytes handed to the consumer so far. */
  consumed = 0;

  constructor(private readonly tmpDir: string) {}

  get spooled(): boolean {
    return this.filePath !== undefined;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private noteHead(chunk: Buffer): void {
    if (this.headLen >= 8) return;
    this.headBuf.push(chunk.subarray(0, 8 - this.headLen));
    this.headLen += Math.min(chunk.length, 8 - this.headLen);
    if (this.headLen >= 8) this.wakeHead();
  }

  private wakeHead(): void {
    const w = this.headWaiters;
    this.headWaiters = [];
    for (const f of w) f();
  }

  /** The first bytes (up to 8) once known, for compression sniffing. */
  async head(): Promise<Buffer> {
    while (this.headLen < 8 && !this.done && !this.error) await new Promise<void>((r) => this.headWaiters.push(r));
    if (this.error && this.headLen === 0) throw this.error;
    return Buffer.concat(this.headBuf);
  }

  /** Writes a downloaded chunk (resolves when it may write the next). */
  async write(chunk: Buffer): Promise<void> {
    if (this.error) throw this.error;
    this.noteHead(chunk);
    if (this.direct) {
      this.consumed += chunk.length;
      if (!this.direct.write(chunk)) {
        await new Promise<void>((resolve, reject) => {
          const onDrain = () => {
            this.direct!.off('close', onClose);
            resolve();
          };
          const onClose = () => {
            this.direct!.off('drain', onDrain);
            reject(this.error ?? new Error('layer registration stopped reading'));
          };
          this.direct!.once('drain', onDrain);
          this.direct!.once('close', onClose);
        });
      }
      return;
    }
    if (!this.file) {
      // the consumer is not there yet: spool to disk
      if (!this.fileOpening) {
        this.filePath = path.join(this.tmpDir, `pull-${randomBytes(8).toString('hex')}`);
        this.fileOpening = fsp.mkdir(this.tmpDir, { recursive: true }).then(async () => {
          this.file = await fsp.open(this.filePath!, 'w+', 0o600);
        });
      }
      await this.fileOpening;
    }
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.file!.write(chunk, off, chunk.length - off, this.written);
      off += bytesWritten;
      this.written += bytesWritten;
    }
    this.wake();
  }

  /** The download finished and verified. */
  end(): void {
    this.done = true;
    this.wakeHead();
    if (this.direct) this.direct.end();
    this.wake();
  }

  /** The download failed: the consumer's stream fails with `err`. */
  fail(err: Error): void {
    if (this.error) return;
    this.error = err;
    this.wakeHead();
    if (this.direct) this.direct.destroy(err);
    this.wake();
  }

  /** The consumer's stream of the compressed bytes from the start (call once). */
  attach(): Readable {
    if (this.attached) throw new Error('spool already attached');
    this.attached = true;
    if (!this.filePath && !this.error) {
      // nothing written yet, or only the head: stream directly from now on
      this.direct = new PassThrough({ highWaterMark: READ_CHUNK });
      if (this.done) this.direct.end();
      return this.direct;
    }
    let pos = 0;
    let reading = false;
    const self = this;
    const r = new Readable({
      highWaterMark: READ_CHUNK,
      read() {
        if (reading) return;
        reading = true;
        void (async () => {
          try {
            for (;;) {
              if (self.error) {
                r.destroy(self.error);
                return;
              }
              if (pos < self.written) {
                const n = Math.min(READ_CHUNK, self.written - pos);
                const buf = Buffer.allocUnsafe(n);
                const { bytesRead } = await self.file!.read(buf, 0, n, pos);
                pos += bytesRead;
                self.consumed += bytesRead;
                if (!r.push(buf.subarray(0, bytesRead))) return;
                continue;
              }
              if (self.done) {
                r.push(null);
                return;
              }
              await new Promise<void>((res) => self.waiters.push(res));
            }
          } catch (e) {
            r.destroy(e as Error);
          } finally {
            reading = false;
          }
        })();
      },
    });
    return r;
  }

  /** Removes the spool file, if any. */
  async dispose(): Promise<void> {
    await this.fileOpening?.catch(() => {});
    if (this.file) await this.file.close().catch(() => {});
    if (this.filePath) await fsp.rm(this.filePath, { force: true }).catch(() => {});
  }
}
