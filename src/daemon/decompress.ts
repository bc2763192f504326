// moby archive.DecompressStream: sniff the first bytes and undo gzip, bzip2,
// xz or zstd; anything else passes through as an uncompressed tar.
import { spawn } from 'node:child_process';
import { PassThrough, type Readable, Transform } from 'node:stream';
import zlib from 'node:zlib';
import { Decompress } from 'fzstd';

const MAGIC: [string, Buffer][] = [
  ['gzip', Buffer.from([0x1f, 0x8b, 0x08])],
  ['bzip2', Buffer.from([0x42, 0x5a, 0x68])],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
];

function zstdStream(): Transform {
  let t: Transform;
  const d = new Decompress((chunk) => {
    t.push(Buffer.from(chunk));
  });
  t = new Transform({
    transform(c: Buffer, _e, cb) {
      try {
        d.push(c);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb) {
      try {
        d.push(new Uint8Array(0), true);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
  return t;
}

function external(cmd: string): Transform {
  const child = spawn(cmd, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
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
      child.on('close', (code) => cb(code === 0 ? null : new Error(`${cmd}: ${err.trim() || `exit ${code}`}`)));
    },
  });
  child.stdout.on('data', (c: Buffer) => t.push(c));
  child.on('error', (e) => t.destroy(e));
  return t;
}

/** The uncompressed view of `input`. */
export function decompressStream(input: Readable): Readable {
  const out = new PassThrough();
  let head = Buffer.alloc(0);
  let decided = false;
  const decide = (final: boolean) => {
    if (decided) return;
    if (!final && head.length < 6) return;
    decided = true;
    input.off('data', onData);
    input.off('end', onEnd);
    const kind = MAGIC.find(([, m]) => head.subarray(0, m.length).equals(m))?.[0];
    const stage: Transform | undefined =
      kind === 'gzip'
        ? zlib.createGunzip()
        : kind === 'zstd'
          ? zstdStream()
          : kind === 'bzip2' || kind === 'xz'
            ? external(kind)
            : undefined;
    const target = stage ?? out;
    if (stage) {
      stage.on('error', (e) => out.destroy(e));
      stage.pipe(out);
    }
    target.write(head);
    if (final) target.end();
    else {
      input.pipe(target);
    }
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
