// Layer decompression: gzip (node:zlib, off the main thread), zstd (fzstd:
// Node 20's zlib has none) or none, chosen by the media type AND the magic
// number of the first bytes (the bytes win; a mismatch is logged by the caller).
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { Decompress } from 'fzstd';
import { invalidArgument } from '../errors/index.js';
import { type Compression, layerCompression } from '../oci/index.js';

const GZIP = Buffer.from([0x1f, 0x8b, 0x08]);
const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const BZIP2 = Buffer.from('BZh');
const XZ = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

export function sniffCompression(head: Buffer): Compression | 'bzip2' | 'xz' {
  if (head.subarray(0, 3).equals(GZIP)) return 'gzip';
  if (head.subarray(0, 4).equals(ZSTD)) return 'zstd';
  if (head.subarray(0, 3).equals(BZIP2)) return 'bzip2';
  if (head.subarray(0, 6).equals(XZ)) return 'xz';
  return 'none';
}

class ZstdDecompress extends Transform {
  private readonly d: Decompress;
  constructor(highWaterMark?: number) {
    super(highWaterMark ? { readableHighWaterMark: highWaterMark, writableHighWaterMark: highWaterMark } : {});
    this.d = new Decompress((chunk) => {
      this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    try {
      this.d.push(chunk);
    } catch (e) {
      cb(invalidArgument(`zstd: ${(e as Error).message}`));
      return;
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.d.push(new Uint8Array(0), true);
    } catch (e) {
      cb(invalidArgument(`zstd: ${(e as Error).message}`));
      return;
    }
    cb();
  }
}

/** Decides the decompressor: the magic number wins over the media type. */
export function chooseCompression(
  mediaType: string,
  head: Buffer,
): { kind: Compression; declared: Compression | undefined } {
  const declared = layerCompression(mediaType);
  const sniffed = sniffCompression(head);
  if (sniffed === 'bzip2' || sniffed === 'xz') throw invalidArgument(`unsupported layer compression ${sniffed}`);
  return { kind: sniffed, declared };
}

export interface DecompressorOptions {
  /** gunzip's output chunk size (default 256 KiB). */
  chunkSize?: number;
  /** Buffer limit of both sides (how far decompression may run ahead of its reader). */
  highWaterMark?: number;
}

export function decompressor(kind: Compression, opts: DecompressorOptions = {}): Transform | undefined {
  const hwm = opts.highWaterMark;
  if (kind === 'gzip')
    return zlib.createGunzip({
      chunkSize: opts.chunkSize ?? 256 * 1024,
      ...(hwm ? { readableHighWaterMark: hwm, writableHighWaterMark: hwm } : {}),
    } as zlib.ZlibOptions);
  if (kind === 'zstd') return new ZstdDecompress(hwm);
  return undefined;
}
