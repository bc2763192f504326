// Deterministic benchmark inputs, generated locally (nothing is downloaded).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const WORDS =
  'the quick brown fox jumps over lazy dog container layer image registry digest overlay diff chain manifest config tag'.split(
    ' ',
  );

/** Pseudo-random bytes from a seed (sha256 counter mode): incompressible, reproducible. */
function seededRandom(seed: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let off = 0;
  let counter = 0;
  while (off < size) {
    const block = createHash('sha256').update(`${seed}:${counter++}`).digest();
    off += block.copy(out, off);
  }
  return out;
}

function text(seed: number, size: number): Buffer {
  const parts: string[] = [];
  let len = 0;
  let x = seed;
  while (len < size) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const w = `${WORDS[x % WORDS.length]}${x % 13 === 0 ? '\n' : ' '}`;
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

/**
 * A directory of `totalBytes` bytes, half incompressible and half text, in a
 * realistic mix of file sizes: a few large files and many small ones.
 */
export function makeTree(dir: string, totalBytes: number, seed = 'berth'): void {
  fs.mkdirSync(dir, { recursive: true });
  const half = Math.floor(totalBytes / 2);
  const sizes = (budget: number): number[] => {
    const out: number[] = [];
    let left = budget;
    // 50% in 8 large files, 30% in 1 KiB–256 KiB files, 20% in 1–8 KiB files
    const large = Math.floor(budget * 0.5);
    for (let i = 0; i < 8; i++) out.push(Math.floor(large / 8));
    left -= Math.floor(large / 8) * 8;
    let medium = Math.floor(budget * 0.3);
    let k = 1;
    while (medium > 0) {
      const s = Math.min(medium, 1024 * (1 + ((k * 37) % 256)));
      out.push(s);
      medium -= s;
      left -= s;
      k++;
    }
    while (left > 0) {
      const s = Math.min(left, 1024 * (1 + (k++ % 8)));
      out.push(s);
      left -= s;
    }
    return out;
  };
  let n = 0;
  for (const [kind, list] of [
    ['bin', sizes(half)],
    ['txt', sizes(totalBytes - half)],
  ] as const) {
    for (const s of list) {
      const sub = path.join(dir, kind, `d${Math.floor(n / 200)}`);
      fs.mkdirSync(sub, { recursive: true });
      fs.writeFileSync(path.join(sub, `f${n}`), kind === 'bin' ? seededRandom(`${seed}${n}`, s) : text(n, s));
      n++;
    }
  }
}

/** Tars `dir` with GNU tar (as a layer would be: relative names, numeric owners). */
export function tarTree(dir: string, tarPath: string): void {
  const r = spawnSync('tar', ['--numeric-owner', '-cf', tarPath, '-C', dir, '.'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('tar failed');
}
