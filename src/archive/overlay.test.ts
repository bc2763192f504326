// exportDiff and changes on a real overlay mount.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { MNT_DETACH, native } from '../native/index.js';
import { applyLayer, assembleTar, changes, exportDiff, type TarHeader, TarParser, TarWriter } from './index.js';

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-ovl-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function entries(tar: Buffer): Array<{ h: TarHeader; data: Buffer }> {
  const out: Array<{ h: TarHeader; data: Buffer }> = [];
  const p = new TarParser({
    entry: (h) => out.push({ h, data: Buffer.alloc(0) }),
    data: (b) => {
      const e = out[out.length - 1]!;
      e.data = Buffer.concat([e.data, b]);
    },
    entryEnd() {},
    end() {},
    trailing() {},
  });
  p.write(tar);
  p.finish();
  return out;
}

test('exportDiff and changes of an overlay upper dir after create/modify/delete in the merged view', async () => {
  const lower = path.join(tmp, 'lower');
  const upper = path.join(tmp, 'upper');
  const work = path.join(tmp, 'work');
  const merged = path.join(tmp, 'merged');
  for (const d of [lower, upper, work, merged]) fs.mkdirSync(d);
  const base = new TarWriter()
    .dir('data/', { mtime: 1000 })
    .file('data/old', 'old data', { mtime: 1000 })
    .dir('etc/', { mtime: 1000 })
    .file('etc/conf', 'v1', { mtime: 1000 })
    .dir('keep/', { mtime: 1000 })
    .file('keep/same', 'same', { mtime: 1000 })
    .dir('usr/', { mtime: 1000 })
    .dir('usr/bin/', { mtime: 1000 })
    .file('usr/bin/tool', 'tool', { mode: 0o755, mtime: 1000 })
    .finish();
  await applyLayer(Readable.from([base]), lower, { whiteouts: 'overlay' });

  native.mount('overlay', merged, 'overlay', 0, `lowerdir=${lower},upperdir=${upper},workdir=${work}`);
  try {
    fs.writeFileSync(path.join(merged, 'etc/conf'), 'v2 longer');
    fs.mkdirSync(path.join(merged, 'new'));
    fs.writeFileSync(path.join(merged, 'new/file'), 'fresh');
    fs.linkSync(path.join(merged, 'new/file'), path.join(merged, 'new/link'));
    fs.chownSync(path.join(merged, 'new/file'), 1000, 1000);
    fs.rmSync(path.join(merged, 'usr/bin/tool'));
    fs.rmSync(path.join(merged, 'data'), { recursive: true });
    fs.mkdirSync(path.join(merged, 'data'));
    fs.writeFileSync(path.join(merged, 'data/fresh'), 'new data');
  } finally {
    native.umount2(merged, MNT_DETACH);
  }

  const tar = await collect(exportDiff(upper, { whiteouts: 'overlay' }));
  const list = entries(tar);
  const names = list.map((e) => e.h.name);
  assert.deepEqual(names, [
    'data/',
    'data/.wh..wh..opq',
    'data/fresh',
    'etc/',
    'etc/conf',
    'new/',
    'new/file',
    'new/link',
    'usr/',
    'usr/bin/',
    'usr/bin/.wh.tool',
  ]);
  const by = new Map(list.map((e) => [e.h.name, e]));
  assert.equal(by.get('etc/conf')!.data.toString(), 'v2 longer');
  assert.equal(by.get('new/file')!.h.uid, 1000);
  assert.equal(by.get('new/link')!.h.typeflag, '1');
  assert.equal(by.get('new/link')!.h.linkname, 'new/file');
  assert.equal(by.get('usr/bin/.wh.tool')!.h.typeflag, '0');
  assert.equal(by.get('usr/bin/.wh.tool')!.h.mode, 0o600);
  assert.equal(by.get('data/.wh..wh..opq')!.h.mtime, 0);
  assert.equal(by.get('data/')!.h.pax, undefined, 'opaque xattr is not exported as a PAX record');
  assert.ok(tar.subarray(-1024).equals(Buffer.alloc(1024)));
  assert.equal(tar.length % 512, 0);

  // The exported diff applied as a layer reproduces the upper dir's whiteouts, and round-trips.
  const again = path.join(tmp, 'again');
  fs.mkdirSync(again);
  const ts = path.join(tmp, 'ts.json.gz');
  await applyLayer(Readable.from([tar]), again, { whiteouts: 'overlay', tarSplitPath: ts });
  const wo = fs.lstatSync(path.join(again, 'usr/bin/tool'));
  assert.ok(wo.isCharacterDevice() && wo.rdev === 0);
  assert.deepEqual(native.lgetxattr(path.join(again, 'data'), 'trusted.overlay.opaque'), Buffer.from('y'));
  assert.ok((await collect(assembleTar(ts, again))).equals(tar));
  const reexport = await collect(exportDiff(again, { whiteouts: 'overlay' }));
  if (!reexport.equals(tar)) {
    // say where they differ (a rare failure seen once in CI, not yet understood)
    let at = 0;
    while (at < Math.min(tar.length, reexport.length) && tar[at] === reexport[at]) at++;
    const block = Math.floor(at / 512) * 512;
    const name = (b: Buffer) =>
      b
        .subarray(block, block + 100)
        .toString('latin1')
        .replace(/\0.*$/s, '');
    assert.fail(
      `export is deterministic: first difference at byte ${at} (block ${block / 512}, offset ${at - block}); ` +
        `names there: ${JSON.stringify(name(tar))} vs ${JSON.stringify(name(reexport))}; lengths ${tar.length} vs ${reexport.length}`,
    );
  }

  const ch = await changes(upper, [lower]);
  const got = new Map(ch.map((c) => [c.path, c.kind]));
  const expected: Record<string, number> = {
    '/data': 2,
    '/data/fresh': 1,
    '/etc/conf': 0,
    '/new': 1,
    '/new/file': 1,
    '/new/link': 1,
    '/usr/bin/tool': 2,
  };
  for (const [p, k] of Object.entries(expected)) assert.equal(got.get(p), k, `${p} in ${JSON.stringify(ch)}`);
  for (const c of ch) {
    if (!(c.path in expected))
      assert.ok(['/etc', '/usr', '/usr/bin'].includes(c.path) && c.kind === 0, JSON.stringify(c));
  }
  assert.ok(!got.has('/keep') && !got.has('/keep/same'));
});
