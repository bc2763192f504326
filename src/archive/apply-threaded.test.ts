// applyLayerOffThread: the same result as applyLayer (diff ID, sizes, tree,
// tar-split), errors with their kinds, cancellation, and backpressure on a
// tar larger than the in-flight limit.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import zlib from 'node:zlib';
import { BerthError } from '../errors/index.js';
import { applyLayer, applyLayerOffThread } from './index.js';

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-apply-threaded-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function fresh(): { dest: string; ts: string } {
  const d = path.join(tmp, `case${n++}`);
  fs.mkdirSync(path.join(d, 'diff'), { recursive: true });
  return { dest: path.join(d, 'diff'), ts: path.join(d, 'tar-split.json.gz') };
}

function chunked(buf: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      out.push(`${rel}${e.name} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) walk(p, `${rel}${e.name}/`);
    }
  };
  walk(dir, '');
  return out;
}

test('off-thread extraction gives the same diff ID, sizes, tree and tar-split as applyLayer', async () => {
  const src = fs.mkdtempSync(path.join(tmp, 'src-'));
  fs.mkdirSync(path.join(src, 'd/e'), { recursive: true });
  fs.writeFileSync(path.join(src, 'd/big'), Buffer.alloc(20 << 20, 3)); // more than the in-flight limit
  for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(src, 'd/e', `f${i}`), `file ${i}\n`);
  fs.symlinkSync('../big', path.join(src, 'd/e/link'));
  fs.linkSync(path.join(src, 'd/e/f1'), path.join(src, 'd/hard'));
  const tar = execFileSync('tar', ['--format=pax', '-C', src, '-cf', '-', '.'], { maxBuffer: 1 << 28 });
  const a = fresh();
  const b = fresh();
  const inThread = await applyLayer(chunked(tar, 65536), a.dest, { tarSplitPath: a.ts, whiteouts: 'overlay' });
  const offThread = await applyLayerOffThread(chunked(tar, 65536), b.dest, {
    tarSplitPath: b.ts,
    whiteouts: 'overlay',
  });
  assert.deepEqual(offThread, inThread);
  assert.deepEqual(listing(b.dest), listing(a.dest));
  assert.ok(fs.readFileSync(b.ts).equals(fs.readFileSync(a.ts)), 'tar-split identical');
  // workers are reused: a second, small layer
  const c = fresh();
  const small = execFileSync('tar', ['-C', path.join(src, 'd/e'), '-cf', '-', 'f1'], { maxBuffer: 1 << 20 });
  const r = await applyLayerOffThread(Readable.from([small]), c.dest, { whiteouts: 'overlay' });
  assert.equal(fs.readFileSync(path.join(c.dest, 'f1'), 'utf8'), 'file 1\n');
  assert.equal(r.tarSize, small.length);
});

test('off-thread: a bad tar fails with the extractor error and kind; a failing stream and cancellation stop it', async () => {
  const bad = Buffer.alloc(1024, 0x41); // not a tar header
  const d1 = fresh();
  await assert.rejects(applyLayerOffThread(Readable.from([bad]), d1.dest, { whiteouts: 'overlay' }), (e: Error) => {
    assert.ok(e instanceof BerthError, String(e));
    assert.equal(e.kind, 'invalid-argument');
    return true;
  });
  // the input stream fails mid-way
  const d2 = fresh();
  const failing = new PassThrough();
  const p = applyLayerOffThread(failing, d2.dest, { whiteouts: 'overlay' });
  failing.write(Buffer.alloc(512));
  setImmediate(() => failing.destroy(new Error('connection reset')));
  await assert.rejects(p, /connection reset/);
  // cancelled by the signal while waiting for input
  const d3 = fresh();
  const ac = new AbortController();
  const idle = new PassThrough();
  const p3 = applyLayerOffThread(idle, d3.dest, { whiteouts: 'overlay', signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(p3, (e: Error) => e instanceof BerthError && e.kind === 'cancelled');
  idle.destroy();
});

test('off-thread with compression: the worker decompresses (gzip, zstd); chunks may be transferred', async () => {
  const src = fs.mkdtempSync(path.join(tmp, 'srcz-'));
  for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(src, `f${i}`), Buffer.alloc(100_000 + i, i));
  const tar = execFileSync('tar', ['-C', src, '-cf', '-', '.'], { maxBuffer: 1 << 28 });
  const a = fresh();
  const want = await applyLayer(Readable.from([tar]), a.dest, { tarSplitPath: a.ts, whiteouts: 'overlay' });
  const gz = zlib.gzipSync(tar);
  // own-buffer chunks (transferred) of the gzip stream
  const own: Buffer[] = [];
  for (let i = 0; i < gz.length; i += 100_000) own.push(Buffer.from(gz.subarray(i, i + 100_000)));
  const b = fresh();
  const got = await applyLayerOffThread(Readable.from(own), b.dest, {
    tarSplitPath: b.ts,
    whiteouts: 'overlay',
    compression: 'gzip',
    transferChunks: true,
  });
  assert.deepEqual(got, want);
  assert.deepEqual(listing(b.dest), listing(a.dest));
  assert.ok(fs.readFileSync(b.ts).equals(fs.readFileSync(a.ts)));
  const zst = execFileSync('zstd', ['-q', '-c'], { input: tar, maxBuffer: 1 << 28 });
  const c = fresh();
  assert.deepEqual(
    await applyLayerOffThread(Readable.from([zst]), c.dest, { whiteouts: 'overlay', compression: 'zstd' }),
    want,
  );
  // not gzip at all
  const d = fresh();
  await assert.rejects(
    applyLayerOffThread(Readable.from([tar.subarray(0, 4096)]), d.dest, { whiteouts: 'overlay', compression: 'gzip' }),
    /incorrect header check/,
  );
});
