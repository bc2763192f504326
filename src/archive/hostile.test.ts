// Crafted hostile layers: each must fail with a clear invalid-argument error
// or land entirely inside dest; the sentinel directory next to dest (and
// everything else outside dest) must be untouched.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { BerthError } from '../errors/index.js';
import { applyLayer, TarWriter } from './index.js';

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-hostile-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function snapshot(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      h.update(`${path.relative(tmp, p)} ${st.mode} ${st.uid} ${st.gid} ${st.mtimeMs} ${st.size}\n`);
      if (st.isFile()) h.update(fs.readFileSync(p));
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return h.digest('hex');
}

let n = 0;
interface Outcome {
  dest: string;
  error?: unknown;
}

/** Applies `tar` next to a sentinel dir; asserts nothing outside dest changed. */
async function run(
  tar: Buffer,
  opts: { allowDevices?: boolean; chunk?: number; noTarSplit?: boolean } = {},
): Promise<Outcome> {
  const box = path.join(tmp, `box${n++}`);
  const dest = path.join(box, 'dest');
  const sentinel = path.join(box, 'sentinel');
  fs.mkdirSync(dest, { recursive: true });
  fs.mkdirSync(sentinel);
  fs.writeFileSync(path.join(sentinel, 'secret'), 'do not touch', { mode: 0o600 });
  fs.utimesSync(sentinel, 1_000_000_000, 1_000_000_000);
  const before = snapshot(sentinel);
  const boxEntries = fs.readdirSync(box).sort().join();
  const chunks: Buffer[] = [];
  const size = opts.chunk ?? tar.length;
  for (let i = 0; i < tar.length; i += size) chunks.push(tar.subarray(i, i + size));
  let error: unknown;
  try {
    await applyLayer(Readable.from(chunks), dest, {
      tarSplitPath: opts.noTarSplit ? undefined : path.join(box, 'tar-split.json.gz'),
      whiteouts: 'overlay',
      allowDevices: opts.allowDevices,
    });
  } catch (e) {
    error = e;
  }
  assert.equal(snapshot(sentinel), before, 'sentinel changed');
  const now = fs.readdirSync(box).sort().join();
  assert.equal(
    now,
    error || opts.noTarSplit ? boxEntries : 'dest,sentinel,tar-split.json.gz',
    'unexpected files next to dest',
  );
  assert.ok(!fs.existsSync('/x') && !fs.existsSync('/etc/x') && !fs.existsSync('/pwned'), 'wrote to /');
  return { dest, error };
}

function assertInvalid(o: Outcome, re: RegExp): void {
  assert.ok(o.error instanceof BerthError, `expected a BerthError, got ${String(o.error)}`);
  assert.equal(o.error.kind, 'invalid-argument');
  assert.match(o.error.message, re);
}

test('names escaping with .. are rejected, in ustar, PAX and GNU long names', async () => {
  assertInvalid(await run(new TarWriter().file('../x', 'evil').finish()), /"\.\.\/x" is outside of/);
  assertInvalid(await run(new TarWriter().file('a/../../x', 'evil').finish()), /"a\/\.\.\/\.\.\/x" is outside of/);
  assertInvalid(
    await run(new TarWriter().file(`../sentinel/${'p'.repeat(120)}`, 'evil', { format: 'pax' }).finish()),
    /is outside of/,
  );
  assertInvalid(
    await run(new TarWriter().file(`../sentinel/${'g'.repeat(120)}`, 'evil', { format: 'gnu' }).finish()),
    /is outside of/,
  );
  assertInvalid(
    await run(new TarWriter().file('ok', 'x', { pax: { path: '../../sentinel/secret' } }).finish()),
    /is outside of/,
  );
});

test('absolute names are rooted at dest', async () => {
  const o = await run(new TarWriter().file('/etc/x', 'rooted').file('/../sentinel/secret', 'rooted too').finish());
  assert.equal(o.error, undefined);
  assert.equal(fs.readFileSync(path.join(o.dest, 'etc/x'), 'utf8'), 'rooted');
  assert.equal(fs.readFileSync(path.join(o.dest, 'sentinel/secret'), 'utf8'), 'rooted too');
});

test('symlinked parents resolve inside dest like a chroot (a -> /, a -> ../.., chains)', async () => {
  const o = await run(
    new TarWriter()
      .symlink('a', '/')
      .file('a/x', 'via root link')
      .symlink('up', '../..')
      .file('up/sentinel/secret', 'via up link')
      .symlink('c1', 'c2')
      .symlink('c2', '../../../sentinel')
      .file('c1/secret2', 'via chain')
      .finish(),
  );
  assert.equal(o.error, undefined);
  assert.equal(fs.readFileSync(path.join(o.dest, 'x'), 'utf8'), 'via root link');
  assert.equal(fs.readFileSync(path.join(o.dest, 'sentinel/secret'), 'utf8'), 'via up link');
  assert.equal(fs.readFileSync(path.join(o.dest, 'sentinel/secret2'), 'utf8'), 'via chain');
  assert.equal(fs.readlinkSync(path.join(o.dest, 'a')), '/');
});

test('final components never follow symlinks: files, dirs, devices replace the link', async () => {
  const box = path.join(tmp, `box${n}`);
  const outside = path.join(box, 'sentinel/secret');
  const o = await run(
    new TarWriter()
      .symlink('f', outside)
      .file('f', 'replaced', { mode: 0o777 })
      .symlink('d', path.join(box, 'sentinel'))
      .dir('d', { mode: 0o777, mtime: 5 })
      .symlink('h', outside)
      .hardlink('hl', 'h', { mode: 0o777, uid: 99 })
      .symlink('dd', path.join(box, 'sentinel'))
      .dir('dd2', { mtime: 7 })
      .add({ name: 'p', type: '6' })
      .finish(),
    { noTarSplit: true },
  );
  assert.equal(o.error, undefined);
  assert.equal(fs.readFileSync(path.join(o.dest, 'f'), 'utf8'), 'replaced');
  assert.ok(fs.lstatSync(path.join(o.dest, 'd')).isDirectory());
  assert.ok(fs.lstatSync(path.join(o.dest, 'hl')).isSymbolicLink(), 'hard link to a symlink links the symlink');
});

test('a directory replaced by a symlink later does not get its mtime restored through it', async () => {
  const box = path.join(tmp, `box${n}`);
  const o = await run(
    new TarWriter().dir('d', { mtime: 12345 }).file('d/f', 'x').symlink('d', path.join(box, 'sentinel')).finish(),
    { noTarSplit: true },
  );
  assert.equal(o.error, undefined);
  assert.ok(fs.lstatSync(path.join(o.dest, 'd')).isSymbolicLink());
});

test('hard links must resolve inside dest', async () => {
  assertInvalid(
    await run(new TarWriter().hardlink('x', '/etc/passwd').finish()),
    /invalid hardlink "x" -> "\/etc\/passwd"/,
  );
  assertInvalid(await run(new TarWriter().hardlink('x', '../sentinel/secret').finish()), /invalid hardlink .*outside/);
  const box = path.join(tmp, `box${n}`);
  assertInvalid(
    await run(new TarWriter().symlink('evil', path.join(box, 'sentinel')).hardlink('x', 'evil/secret').finish()),
    /invalid hardlink "x" -> "evil\/secret"/,
  );
  assertInvalid(
    await run(new TarWriter().symlink('evil', '../sentinel').hardlink('x', 'evil/secret').finish()),
    /invalid hardlink/,
  );
  assertInvalid(await run(new TarWriter().dir('d').hardlink('x', 'd').finish()), /invalid hardlink .*directory/);
});

test('devices are refused when allowDevices is false', async () => {
  const tar = new TarWriter().add({ name: 'sda', type: '4', devmajor: 8, devminor: 0 }).finish();
  assertInvalid(await run(tar, { allowDevices: false }), /device node "sda" is not allowed/);
  const ok = await run(tar);
  assert.ok(fs.lstatSync(path.join(ok.dest, 'sda')).isBlockDevice());
});

test('malformed archives: truncated, bad checksum, negative and huge sizes, bad whiteouts', async () => {
  const good = new TarWriter().file('a', 'x'.repeat(2000)).finish();
  assertInvalid(await run(good.subarray(0, 1500)), /unexpected end of tar archive/);
  assertInvalid(await run(good.subarray(0, 700), { chunk: 100 }), /unexpected end/);
  assertInvalid(await run(new TarWriter().file('a', 'x', { badChecksum: true }).finish()), /checksum/);
  const neg = Buffer.alloc(12, 0xff); // base-256 -1
  assertInvalid(await run(new TarWriter().file('a', 'x', { rawSizeField: neg }).finish()), /negative size/);
  const huge = Buffer.alloc(12, 0);
  huge[0] = 0x80;
  huge[4] = 0x40; // 2^62
  assertInvalid(await run(new TarWriter().file('a', 'x', { rawSizeField: huge }).finish()), /too large|overflow/);
  const octalHuge = Buffer.from('77777777777\0', 'latin1'); // 8 GiB, stream far shorter
  assertInvalid(await run(new TarWriter().file('a', 'x', { rawSizeField: octalHuge }).finish()), /unexpected end/);
  const bogus = Buffer.from('12x4567\0\0\0\0\0', 'latin1');
  assertInvalid(await run(new TarWriter().file('a', 'x', { rawSizeField: bogus }).finish()), /not an octal/);
  assertInvalid(await run(new TarWriter().file('.wh..', '').finish()), /invalid whiteout/);
  assertInvalid(await run(new TarWriter().add({ name: 'x', type: 'S' }).finish()), /sparse/);
  assertInvalid(await run(new TarWriter().add({ name: 'x', type: 'V' }).finish()), /unhandled tar entry type/);
  assertInvalid(
    await run(Buffer.concat([Buffer.alloc(512), new TarWriter().file('a', 'x').finish()])),
    /zero block followed by a non-zero block/,
  );
  assertInvalid(await run(new TarWriter().raw(Buffer.from('1 x\n'.padEnd(512, '\0'))).finish()), /checksum/);
});
