// A tiny ustar writer for the layer tests and the crash-test child
// (deterministic output: fixed mtime, uid 0).
import { createHash, randomBytes } from 'node:crypto';

export interface FixtureEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink';
  data?: Buffer | string;
  mode?: number;
  linkname?: string;
}

function octal(n: number, len: number): string {
  return `${n.toString(8).padStart(len - 1, '0')}\0`;
}

function header(e: FixtureEntry, size: number): Buffer {
  const b = Buffer.alloc(512);
  const type = e.type ?? 'file';
  const name = type === 'dir' && !e.name.endsWith('/') ? `${e.name}/` : e.name;
  if (Buffer.byteLength(name) > 100) throw new Error(`fixture name too long: ${name}`);
  b.write(name, 0, 100, 'utf8');
  b.write(octal(e.mode ?? (type === 'dir' ? 0o755 : 0o644), 8), 100, 'ascii');
  b.write(octal(0, 8), 108, 'ascii');
  b.write(octal(0, 8), 116, 'ascii');
  b.write(octal(size, 12), 124, 'ascii');
  b.write(octal(1700000000, 12), 136, 'ascii');
  b.write('        ', 148, 'ascii');
  b.write(type === 'dir' ? '5' : type === 'symlink' ? '2' : '0', 156, 'ascii');
  if (e.linkname) b.write(e.linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  b.write('root', 265, 'ascii');
  b.write('root', 297, 'ascii');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

export function makeTar(entries: FixtureEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === 'file' || e.type === undefined ? Buffer.from(e.data ?? '') : Buffer.alloc(0);
    parts.push(header(e, data.length), data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A tar of a few random small files under a random directory. */
export function randomTar(files = 3): Buffer {
  const dir = `d${randomBytes(4).toString('hex')}`;
  const entries: FixtureEntry[] = [{ name: dir, type: 'dir' }];
  for (let i = 0; i < files; i++) {
    entries.push({ name: `${dir}/f${i}`, data: randomBytes(1 + Math.floor(Math.random() * 3000)) });
  }
  return makeTar(entries);
}

export function sha256Hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
