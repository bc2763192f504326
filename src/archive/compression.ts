// Layer compression: detection by magic number and streaming decompression.
// Media types say what a blob should be; the bytes say what it is, and both
// docker load and registries in the wild disagree with their labels often
// enough that berth trusts the magic (as moby's DecompressStream does).
import { spawn } from 'node:child_process';
import { PassThrough, type Readable, Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { invalidArgument } from '../errors/index.js';

export type CompressionKind = 'none' | 'gzip' | 'zstd' | 'bzip2' | 'xz';

const MAGIC: Array<[CompressionKind, Buffer]> = [
  ['gzip', Buffer.from([0x1f, 0x8b, 0x08])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['bzip2', Buffer.from('BZh')],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
];

/** The compression of a stream whose first bytes are `head` (6 bytes suffice). */
export function detectCompression(head: Buffer): CompressionKind {
  for (const [kind, m] of MAGIC) if (head.length >= m.length && head.subarray(0, m.length).equals(m)) return kind;
  return 'none';
}

/** True when `head` (≥ 512 bytes, or the whole stream if shorter) starts like an uncompressed tar. */
export function looksLikeTar(head: Buffer): boolean {
  if (head.length < 512) return false;
  const block = head.subarray(0, 512);
  if (block.every((b) => b === 0)) return true; // an empty archive (end-of-archive blocks)
  if (block.subarray(257, 262).toString('latin1') === 'ustar') return true;
  // a v7 header: check the checksum (spaces for the checksum field itself)
  const field = block.subarray(148, 156).toString('latin1').replace(/\0.*$/, '').trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
  return sum === Number.parseInt(field, 8);
}

class ZstdTransform extends Transform {
  private readonly z = new ZstdDecompress((chunk) => {
    this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  });
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    try {
      this.z.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      cb();
    } catch (e) {
      cb(invalidArgument(`zstd: ${(e as Error).message}`, e));
    }
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.z.push(new Uint8Array(0), true);
      cb();
    } catch (e) {
      cb(invalidArgument(`zstd: ${(e as Error).message}`, e));
    }
  }
}

/** bzip2 and xz through the system tools (moby execs `xz -d -c -q` too); only `docker import` takes them. */
function external(cmd: 'bzip2' | 'xz'): Transform {
  const child = spawn(cmd, ['-dcq'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const t = new Transform({
    transform(c: Buffer, _e, cb) {
      if (!child.stdin.write(c)) child.stdin.once('drain', () => cb());
      else cb();
    },
    flush(cb) {
      child.stdin.end();
      child.on('close', (code) =>
        cb(code === 0 ? null : invalidArgument(`${cmd}: ${err.trim() || `exit status ${code}`}`)),
      );
    },
  });
  child.stdout.on('data', (c: Buffer) => t.push(c));
  child.on('error', (e) => t.destroy(e));
  return t;
}

/**
 * A transform that decompresses `kind` (undefined for 'none'). Layers use
 * gzip, zstd or nothing; bzip2 and xz are accepted only where dockerd accepts
 * them (`docker import`), with `allowExternal`.
 */
export function decompressor(kind: CompressionKind, what = 'layer', allowExternal = false): Transform | undefined {
  switch (kind) {
    case 'none':
      return undefined;
    case 'gzip':
      return zlib.createGunzip({ chunkSize: 1 << 17 });
    case 'zstd':
      return new ZstdTransform();
    default:
      if (allowExternal) return external(kind);
      throw invalidArgument(`${what}: unsupported compression ${kind}`);
  }
}

/** The uncompressed view of `input`, whatever of gzip, zstd, bzip2, xz or nothing it is (moby DecompressStream). */
export function decompressStream(input: Readable): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  let head = Buffer.alloc(0);
  let decided = false;
  const decide = (final: boolean) => {
    if (decided || (!final && head.length < 6)) return;
    decided = true;
    input.off('data', onData);
    input.off('end', onEnd);
    let stage: Transform | undefined;
    try {
      stage = decompressor(detectCompression(head), 'archive', true);
    } catch (e) {
      out.destroy(e as Error);
      return;
    }
    const target = stage ?? out;
    if (stage) {
      stage.on('error', (e) => out.destroy(e));
      stage.pipe(out);
    }
    target.write(head);
    if (final) target.end();
    else input.pipe(target);
  };
  const onData = (c: Buffer) => {
    head = Buffer.concat([head, c]);
    decide(false);
  };
  const onEnd = () => decide(true);
  input.on('data', onData);
  input.on('end', onEnd);
  input.on('error', (e) => out.destroy(e));
  return out;
}
