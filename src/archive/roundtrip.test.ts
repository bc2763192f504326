import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import zlib from 'node:zlib';
import { native } from '../native/index.js';
import { applyLayer, assembleTar, TarWriter } from './index.js';

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-rt-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function fresh(): { dest: string; ts: string } {
  const d = path.join(tmp, `case${n++}`);
  fs.mkdirSync(path.join(d, 'diff'), { recursive: true });
  return { dest: path.join(d, 'diff'), ts: path.join(d, 'tar-split.json.gz') };
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function chunked(buf: Buffer, size = 7919): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

/** applyLayer then assembleTar; asserts byte identity and diffId, returns the result. */
async function roundTrip(tar: Buffer, whiteouts: 'overlay' | 'none' = 'overlay', chunk?: number) {
  const { dest, ts } = fresh();
  const res = await applyLayer(chunk ? chunked(tar, chunk) : Readable.from([tar]), dest, {
    tarSplitPath: ts,
    whiteouts,
  });
  assert.equal(res.diffId, `sha256:${createHash('sha256').update(tar).digest('hex')}`);
  assert.equal(res.tarSize, tar.length);
  const again = await collect(assembleTar(ts, dest));
  assert.equal(again.length, tar.length, 'reassembled length');
  assert.ok(again.equals(tar), 'reassembled bytes differ');
  return { res, dest, ts };
}

function gnuTar(format: string, src: string, extra: string[] = []): Buffer {
  return execFileSync('tar', [`--format=${format}`, '-C', src, '-cf', '-', ...extra, '.'], {
    maxBuffer: 1 << 28,
  });
}

function makeTree(): string {
  const src = fs.mkdtempSync(path.join(tmp, 'src-'));
  fs.mkdirSync(path.join(src, 'dir/sub'), { recursive: true });
  fs.writeFileSync(path.join(src, 'dir/hello.txt'), 'hello world\n');
  fs.writeFileSync(path.join(src, 'empty'), '');
  fs.writeFileSync(path.join(src, 'big.bin'), randomBytes(3 * 1024 * 1024 + 17));
  fs.linkSync(path.join(src, 'dir/hello.txt'), path.join(src, 'dir/sub/hardlink'));
  fs.symlinkSync('../hello.txt', path.join(src, 'dir/sub/link'));
  fs.symlinkSync('/etc/passwd', path.join(src, 'abs-link'));
  const long = `${'d'.repeat(120)}/${'f'.repeat(150)}`;
  fs.mkdirSync(path.join(src, 'd'.repeat(120)));
  fs.writeFileSync(path.join(src, long), 'long name');
  fs.writeFileSync(path.join(src, 'setuid'), '#!/bin/sh\n', { mode: 0o4755 });
  fs.chmodSync(path.join(src, 'setuid'), 0o4755);
  fs.chownSync(path.join(src, 'dir/hello.txt'), 1234, 5678);
  native.mknod(path.join(src, 'null'), 0o020666, 1, 3);
  native.mknod(path.join(src, 'loop9'), 0o060660, 7, 9);
  native.mknod(path.join(src, 'fifo'), 0o010644, 0, 0);
  native.lsetxattr(path.join(src, 'empty'), 'user.comment', Buffer.from('a note'));
  native.lsetxattr(path.join(src, 'dir/hello.txt'), 'trusted.berth', Buffer.from([0, 1, 2, 255]));
  fs.writeFileSync(Buffer.from(path.join(src, 'caf\xe9-latin1'), 'latin1'), 'non utf8 name');
  fs.utimesSync(path.join(src, 'dir'), 1_600_000_000, 1_600_000_000);
  return src;
}

test('GNU tar archives (gnu, pax, ustar formats) round-trip byte-identically and extract faithfully', async () => {
  const src = makeTree();
  for (const format of ['gnu', 'pax', 'ustar']) {
    const extra = format === 'ustar' ? ['--exclude', `./${'d'.repeat(120)}`] : ['--xattrs', '--xattrs-include=*'];
    const tar = gnuTar(format, src, extra);
    const { res, dest } = await roundTrip(tar, 'overlay', format === 'pax' ? 4096 + 3 : undefined);
    const st = fs.lstatSync(path.join(dest, 'dir/hello.txt'));
    assert.equal(st.uid, 1234, format);
    assert.equal(st.gid, 5678, format);
    assert.equal(fs.lstatSync(path.join(dest, 'dir/sub/hardlink')).ino, st.ino, `${format}: hard link shares inode`);
    assert.equal(fs.readlinkSync(path.join(dest, 'dir/sub/link')), '../hello.txt');
    assert.equal(fs.readlinkSync(path.join(dest, 'abs-link')), '/etc/passwd');
    assert.equal(fs.lstatSync(path.join(dest, 'setuid')).mode & 0o7777, 0o4755, `${format}: setuid kept`);
    const nul = fs.lstatSync(path.join(dest, 'null'));
    assert.ok(nul.isCharacterDevice());
    assert.equal(nul.rdev, fs.lstatSync(path.join(src, 'null')).rdev);
    assert.ok(fs.lstatSync(path.join(dest, 'loop9')).isBlockDevice());
    assert.ok(fs.lstatSync(path.join(dest, 'fifo')).isFIFO());
    assert.equal(fs.statSync(path.join(dest, 'dir')).mtimeMs, 1_600_000_000_000, `${format}: dir mtime restored`);
    assert.ok(fs.readFileSync(path.join(dest, 'big.bin')).equals(fs.readFileSync(path.join(src, 'big.bin'))));
    assert.ok(fs.existsSync(Buffer.from(path.join(dest, 'caf\xe9-latin1'), 'latin1')));
    if (format !== 'ustar') {
      assert.equal(fs.readFileSync(path.join(dest, `${'d'.repeat(120)}/${'f'.repeat(150)}`), 'utf8'), 'long name');
      assert.deepEqual(native.lgetxattr(path.join(dest, 'empty'), 'user.comment'), Buffer.from('a note'));
      assert.deepEqual(
        native.lgetxattr(path.join(dest, 'dir/hello.txt'), 'trusted.berth'),
        Buffer.from([0, 1, 2, 255]),
      );
    }
    // size = moby's directory.Size: regular files + symlink targets, hard links once.
    const expected =
      12 + 3 * 1024 * 1024 + 17 + '../hello.txt'.length + '/etc/passwd'.length + 10 + 13 + (format === 'ustar' ? 0 : 9);
    assert.equal(res.size, expected, `${format}: size`);
  }
});

test('TarWriter archives: PAX and GNU long names, xattrs, whiteouts, opaque dirs, empty and trailing data', async () => {
  const tw = new TarWriter()
    .dir('a/', { mode: 0o750, mtime: 1_500_000_000 })
    .file('a/x', 'x', { uid: 7, gid: 8, mtime: 1_500_000_001.25, format: 'pax', atime: 1_700_000_000.5 })
    .file(`a/${'p'.repeat(200)}`, 'pax long', { format: 'pax' })
    .file(`a/${'g'.repeat(200)}`, 'gnu long', { format: 'gnu' })
    .symlink(`a/${'s'.repeat(110)}`, 't'.repeat(130), { format: 'gnu' })
    .file('a/attrs', '', { xattrs: { 'user.k': 'v', 'trusted.bin': Buffer.from([0, 0xff]) } })
    .file('a/.wh.gone', '', { uid: 3, gid: 4 })
    .dir('o/')
    .file('o/.wh..wh..opq', '')
    .file('o/kept', 'kept')
    .add({ name: 'pax_global_header', type: 'g', pax: { comment: 'ignored' } })
    .file(Buffer.from('bad-\xff\xfe-name', 'latin1'), 'raw name')
    .add({ name: 'fifo', type: '6' })
    .add({ name: 'dev', type: '3', devmajor: 4, devminor: 64, format: 'gnu' })
    .add({ name: 'hugeuid', type: '0', uid: 3_000_000, format: 'gnu' }, 'base256');
  const tar = tw.finish({ zeroBlocks: 2, trailing: Buffer.alloc(3000, 0) });
  const { dest, ts, res } = await roundTrip(tar, 'overlay', 1000);
  const wo = fs.lstatSync(path.join(dest, 'a/gone'));
  assert.ok(wo.isCharacterDevice() && wo.rdev === 0, 'whiteout is a 0:0 char device');
  assert.equal(wo.uid, 3);
  assert.ok(!fs.existsSync(path.join(dest, 'a/.wh.gone')));
  assert.deepEqual(native.lgetxattr(path.join(dest, 'o'), 'trusted.overlay.opaque'), Buffer.from('y'));
  assert.ok(!fs.existsSync(path.join(dest, 'o/.wh..wh..opq')));
  assert.deepEqual(native.lgetxattr(path.join(dest, 'a/attrs'), 'trusted.bin'), Buffer.from([0, 0xff]));
  assert.equal(fs.lstatSync(path.join(dest, 'a')).mode & 0o7777, 0o750);
  assert.equal(fs.lstatSync(path.join(dest, 'a/x')).mtimeMs, 1_500_000_001_250);
  assert.equal(fs.lstatSync(path.join(dest, 'hugeuid')).uid, 3_000_000);
  assert.equal(fs.readlinkSync(path.join(dest, `a/${'s'.repeat(110)}`)), 't'.repeat(130));
  assert.equal(res.size, 1 + 8 + 8 + 130 + 4 + 8 + 7);

  // tar-split shape: moby's field names, omitempty, positions, CRC payloads.
  const lines = zlib.gunzipSync(fs.readFileSync(ts)).toString('utf8').split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const [i, e] of entries.entries()) assert.equal(e.position, i);
  for (const [i, e] of entries.entries()) {
    const keys = Object.keys(e);
    if (e.type === 2) assert.deepEqual(keys, ['type', 'payload', 'position'], lines[i]);
    else {
      assert.equal(e.type, 1);
      assert.ok(
        keys.join() === 'type,name,size,payload,position' ||
          keys.join() === 'type,name,payload,position' ||
          keys.join() === 'type,name_raw,size,payload,position',
        lines[i],
      );
      if (e.size) assert.equal(Buffer.from(e.payload as string, 'base64').length, 8);
      else assert.equal(e.payload, null);
    }
  }
  const x = entries.find((e) => e.name === 'a/x')!;
  assert.equal(x.size, 1);
  assert.equal(Buffer.from(x.payload as string, 'base64').readBigUInt64BE(), native.crc64(Buffer.from('x')));
  const raw = entries.find((e) => e.name_raw);
  assert.equal(Buffer.from(raw!.name_raw as string, 'base64').toString('latin1'), 'bad-\xff\xfe-name');
  assert.equal(lines[0]!.slice(0, 20), '{"type":2,"payload":');
  assert.match(
    lines.find((l) => l.includes('"name":"a/x"'))!,
    /^\{"type":1,"name":"a\/x","size":1,"payload":"[A-Za-z0-9+/=]{12}","position":\d+\}$/,
  );
  // After the last file: its padding, the two zero blocks and the trailing bytes, all recorded.
  let lastFile = 0;
  entries.forEach((e, i) => {
    if (e.type === 1) lastFile = i;
  });
  const tailBytes = entries
    .slice(lastFile + 1)
    .reduce((acc, e) => acc + Buffer.from(e.payload as string, 'base64').length, 0);
  assert.equal(tailBytes, 505 + 1024 + 3000);
});

test('whiteouts: none keeps .wh. entries as plain files', async () => {
  const tar = new TarWriter().file('.wh.foo', '').dir('d/').file('d/.wh..wh..opq', '').finish();
  const { dest } = await roundTrip(tar, 'none');
  assert.ok(fs.lstatSync(path.join(dest, '.wh.foo')).isFile());
  assert.ok(fs.lstatSync(path.join(dest, 'd/.wh..wh..opq')).isFile());
});

test('assembleTar detects modified files and reassembles moby-written tar-split', async () => {
  const tar = new TarWriter().file('f', 'original').file('g', 'other').finish();
  const { dest, ts } = await roundTrip(tar);
  // A tar-split as Go's encoder writes it (hand-written, moby style incl. the <>& escaping).
  const hdr = tar.subarray(0, 512);
  const moby = [
    `{"type":2,"payload":"${hdr.toString('base64')}","position":0}`,
    `{"type":1,"name":"f","size":8,"payload":"${Buffer.from(native.crc64(Buffer.from('original')).toString(16).padStart(16, '0'), 'hex').toString('base64')}","position":1}`,
    `{"type":2,"payload":"${tar.subarray(520, 1024 + 512).toString('base64')}","position":2}`,
    `{"type":1,"name":"g","size":5,"payload":"${Buffer.from(native.crc64(Buffer.from('other')).toString(16).padStart(16, '0'), 'hex').toString('base64')}","position":3}`,
    `{"type":2,"payload":"${tar.subarray(1024 + 512 + 5).toString('base64')}","position":4}`,
    '',
  ].join('\n');
  const mobyTs = path.join(path.dirname(ts), 'moby.json.gz');
  fs.writeFileSync(mobyTs, zlib.gzipSync(moby));
  assert.ok((await collect(assembleTar(mobyTs, dest))).equals(tar));
  assert.ok(zlib.gunzipSync(fs.readFileSync(ts)).toString().startsWith(moby.split('\n')[0]!));

  fs.writeFileSync(path.join(dest, 'f'), 'tampered');
  await assert.rejects(collect(assembleTar(ts, dest)), /checksum failed for "f"/);
  fs.writeFileSync(path.join(dest, 'f'), 'short');
  await assert.rejects(collect(assembleTar(ts, dest)), /"f" has 5 bytes, expected 8/);
});

test('duplicate paths are rejected when recording tar-split, replaced otherwise', async () => {
  const tar = new TarWriter().file('a', 'one').file('./a', 'two').finish();
  const { dest, ts } = fresh();
  await assert.rejects(
    applyLayer(Readable.from([tar]), dest, { tarSplitPath: ts, whiteouts: 'overlay' }),
    /duplicates of file paths/,
  );
  assert.ok(!fs.existsSync(ts));
  const d2 = fresh();
  const r = await applyLayer(Readable.from([tar]), d2.dest, { whiteouts: 'overlay' });
  assert.equal(fs.readFileSync(path.join(d2.dest, 'a'), 'utf8'), 'two');
  assert.equal(r.size, 3);
});

test('non-UTF-8 names work for xattrs, devices and whiteouts (native calls via a temporary name)', async () => {
  const dir = Buffer.from('d\xe9j\xe0/', 'latin1');
  const tar = new TarWriter()
    .dir(dir)
    .file(Buffer.from('d\xe9j\xe0/f\xff', 'latin1'), 'data', { xattrs: { 'user.x': 'y' } })
    .add({ name: Buffer.from('d\xe9j\xe0/c\xff', 'latin1'), type: '3', devmajor: 1, devminor: 3 })
    .file(Buffer.from('d\xe9j\xe0/.wh.g\xff', 'latin1'), '')
    .finish();
  const { dest } = await roundTrip(tar);
  const p = (s: string) => Buffer.from(`${dest}/${s}`, 'latin1');
  assert.ok(fs.lstatSync(p('d\xe9j\xe0/c\xff')).isCharacterDevice());
  const wo = fs.lstatSync(p('d\xe9j\xe0/g\xff'));
  assert.ok(wo.isCharacterDevice() && wo.rdev === 0);
  assert.deepEqual(
    fs
      .readdirSync(p('d\xe9j\xe0'), { encoding: 'buffer' })
      .map((b) => b.toString('latin1'))
      .sort(),
    ['c\xff', 'f\xff', 'g\xff'],
  );
});

test('an aborted signal cancels extraction', async () => {
  const { dest } = fresh();
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    applyLayer(Readable.from([new TarWriter().file('a', 'x').finish()]), dest, {
      whiteouts: 'overlay',
      signal: ac.signal,
    }),
    (e: Error & { kind?: string }) => e.kind === 'cancelled',
  );
});
