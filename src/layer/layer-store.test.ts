import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { initLayerKey, setupInitLayer } from '../container/initlayer.js';
import { recordTree } from '../graphdriver/dir-template.js';
import { directorySize } from '../graphdriver/dirsize.js';
import { mountsUnder } from '../graphdriver/overlay2/fsinfo.js';
import { chainIds, type Digest, sha256 } from '../oci/index.js';
import { LayerStore } from './index.js';
import { makeTar } from './tar-fixture.js';

let root: string;
let store: LayerStore;
let layerdb: string;
let home: string;

const tars = [
  makeTar([
    { name: 'etc', type: 'dir' },
    { name: 'etc/os-release', data: 'ID=berth\n' },
    { name: 'bin', type: 'dir' },
    { name: 'bin/sh', data: Buffer.alloc(5000, 7), mode: 0o755 },
    { name: 'gone', data: 'deleted by layer 2' },
  ]),
  makeTar([
    { name: 'etc', type: 'dir' },
    { name: 'etc/os-release', data: 'ID=berth\nVERSION=2\n' },
    { name: '.wh.gone', data: '' },
    { name: 'usr', type: 'dir' },
    { name: 'usr/lib', type: 'symlink', linkname: '../lib' },
  ]),
  makeTar([
    { name: 'app', type: 'dir' },
    { name: 'app/main.js', data: 'console.log(1)\n' },
  ]),
];
const diffIds = tars.map((t) => sha256(t));
const chains = chainIds(diffIds);

const read = (...p: string[]) => fs.readFileSync(path.join(...p), 'utf8');
const entry = (chain: Digest, file: string) => path.join(layerdb, 'sha256', chain.slice(7), file);

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-layer-'));
  store = await LayerStore.open(root);
  layerdb = path.join(root, 'image', 'overlay2', 'layerdb');
  home = path.join(root, 'overlay2');
});
after(async () => {
  await store.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('register', () => {
  test('3 stacked layers: chain IDs and layerdb files exactly as moby writes them', async () => {
    let parent: Digest | undefined;
    for (let i = 0; i < 3; i++) {
      const l = await store.register(Readable.from([tars[i] as Buffer]), parent);
      assert.equal(l.diffId, diffIds[i]);
      assert.equal(l.chainId, chains[i]);
      assert.equal(l.parent, parent);
      parent = l.chainId;
    }
    for (let i = 0; i < 3; i++) {
      const c = chains[i] as Digest;
      const names = fs.readdirSync(path.dirname(entry(c, 'x'))).sort();
      assert.deepEqual(
        names,
        i === 0
          ? ['cache-id', 'diff', 'size', 'tar-split.json.gz']
          : ['cache-id', 'diff', 'parent', 'size', 'tar-split.json.gz'],
      );
      assert.equal(read(entry(c, 'diff')), diffIds[i], 'diff: sha256:<hex>, no newline');
      const cacheId = read(entry(c, 'cache-id'));
      assert.match(cacheId, /^[a-f0-9]{64}$/);
      assert.ok(fs.statSync(path.join(home, cacheId, 'diff')).isDirectory());
      assert.equal(read(entry(c, 'size')), String(await directorySize(path.join(home, cacheId, 'diff'))));
      assert.match(read(entry(c, 'size')), /^\d+$/);
      if (i > 0) assert.equal(read(entry(c, 'parent')), chains[i - 1]);
      const ts = fs.readFileSync(entry(c, 'tar-split.json.gz'));
      assert.deepEqual([...ts.subarray(0, 2)], [0x1f, 0x8b], 'tar-split is gzip');
      for (const f of names) assert.equal(fs.statSync(entry(c, f)).mode & 0o777, 0o644);
    }
    // the overlay2 dirs stack the same way
    const cid = (i: number) => read(entry(chains[i] as Digest, 'cache-id'));
    const link = (i: number) => read(home, cid(i), 'link');
    assert.equal(read(home, cid(2), 'lower'), `l/${link(1)}:l/${link(0)}`);
    assert.equal(read(home, cid(1), 'lower'), `l/${link(0)}`);
    assert.ok(!fs.existsSync(path.join(home, cid(0), 'lower')));
    // whiteout applied as an overlay whiteout in layer 2's diff
    const wh = fs.lstatSync(path.join(home, cid(1), 'diff', 'gone'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0);
    assert.deepEqual(fs.readdirSync(path.join(layerdb, 'tmp')), []);
    assert.deepEqual(await store.check(), []);
  });

  test('registering the same tar again returns the same layer and keeps one cache dir', async () => {
    const before = fs.readdirSync(home).length;
    const again = await store.register(Readable.from([tars[0] as Buffer]));
    assert.equal(again.chainId, chains[0]);
    assert.equal(again.cacheId, read(entry(chains[0] as Digest, 'cache-id')));
    assert.equal(fs.readdirSync(home).length, before, 'the duplicate copy was discarded');
    assert.deepEqual(store.referenceCounts(chains[0] as Digest), { refs: 2, children: 1 });
    // concurrent duplicates converge too
    const [a, b] = await Promise.all([
      store.register(Readable.from([tars[1] as Buffer]), chains[0]),
      store.register(Readable.from([tars[1] as Buffer]), chains[0]),
    ]);
    assert.equal(a.cacheId, b.cacheId);
    assert.equal(fs.readdirSync(home).length, before);
    assert.deepEqual(store.referenceCounts(chains[1] as Digest), { refs: 3, children: 1 });
    await store.release(chains[0] as Digest);
    await store.release(chains[1] as Digest);
    await store.release(chains[1] as Digest);
    assert.deepEqual(await store.check(), []);
  });

  test('tarStream reassembles the exact input tar (sha256 = diff ID)', async () => {
    for (let i = 0; i < 3; i++) {
      const l = store.get(chains[i] as Digest);
      const out = await collect(l.tarStream());
      assert.equal(sha256(out), l.diffId);
      assert.ok(out.equals(tars[i] as Buffer));
      await store.release(l.chainId);
    }
  });

  test('errors: missing parent, unreleased layer, broken tar leave nothing behind', async () => {
    await assert.rejects(store.register(Readable.from([tars[2] as Buffer]), sha256('nope')), /does not exist/);
    assert.throws(() => store.get(sha256('nope')), /does not exist/);
    const bad = Buffer.concat([(tars[2] as Buffer).subarray(0, 700)]);
    await assert.rejects(store.register(Readable.from([bad])));
    assert.deepEqual(await store.check(), []);
  });

  test('descriptor.json is stored for foreign layers', async () => {
    const t = makeTar([{ name: 'foreign', data: 'x' }]);
    const desc = {
      mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
      digest: sha256('blob'),
      size: 5,
      urls: ['https://example.com/x'],
    };
    const l = await store.register(Readable.from([t]), undefined, { descriptor: desc });
    assert.equal(read(entry(l.chainId, 'descriptor.json')), JSON.stringify(desc));
    assert.deepEqual(l.descriptor, desc);
    await store.release(l.chainId);
    assert.ok(!store.has(l.chainId));
  });
});

describe('release and reopen', () => {
  test('reopen rebuilds layers and child counts; caller references start at 0', async () => {
    await store.close();
    store = await LayerStore.open(root);
    assert.deepEqual(
      store
        .list()
        .map((l) => l.chainId)
        .sort(),
      [...chains].sort(),
    );
    assert.deepEqual(store.referenceCounts(chains[0] as Digest), { refs: 0, children: 1 });
    assert.deepEqual(store.referenceCounts(chains[2] as Digest), { refs: 0, children: 0 });
    await assert.rejects(store.release(chains[2] as Digest), /not retained/);
    assert.deepEqual(await store.check(), []);
  });

  test('release deletes bottom-up only when nothing references a layer', async () => {
    const refs = chains.map((c) => store.get(c)); // what the image store would hold
    assert.equal(refs.length, 3);
    assert.deepEqual(await store.release(chains[0] as Digest), [], 'base still has a child');
    assert.deepEqual(await store.release(chains[1] as Digest), [], 'middle still has a child');
    const top = store.get(chains[2] as Digest);
    assert.deepEqual(await store.release(chains[2] as Digest), [], 'top still referenced once');
    const cacheIds = chains.map((c) => read(entry(c, 'cache-id')));
    const links = cacheIds.map((id) => read(home, id, 'link'));
    const removed = await store.release(top.chainId);
    assert.deepEqual(
      removed.map((m) => m.chainId),
      [chains[2], chains[1], chains[0]],
    );
    assert.equal(removed[0]?.diffSize, top.size);
    for (const c of chains) assert.ok(!store.has(c));
    assert.deepEqual(fs.readdirSync(path.join(layerdb, 'sha256')), []);
    for (const id of cacheIds) assert.ok(!fs.existsSync(path.join(home, id)));
    for (const l of links) assert.ok(!fs.existsSync(path.join(home, 'l', l)));
    assert.deepEqual(fs.readdirSync(home), ['l']);
    assert.deepEqual(fs.readdirSync(path.join(home, 'l')), []);
    assert.deepEqual(await store.check(), []);
  });
});

describe('RW layers', () => {
  const ctr = 'c0ffee'.padEnd(64, '0');
  test('create (with -init), mount, write, diff, release', async () => {
    const base = await store.register(Readable.from([tars[0] as Buffer]));
    const mid = await store.register(Readable.from([tars[1] as Buffer]), base.chainId);
    const rw = await store.createRWLayer(ctr, mid.chainId, {
      initFunc: async (rootDir) => {
        fs.mkdirSync(path.join(rootDir, 'etc'), { recursive: true });
        fs.writeFileSync(path.join(rootDir, 'etc', 'hosts'), '127.0.0.1 localhost\n');
      },
    });
    const mdir = path.join(layerdb, 'mounts', ctr);
    assert.deepEqual(fs.readdirSync(mdir).sort(), ['init-id', 'mount-id', 'parent']);
    assert.equal(read(mdir, 'mount-id'), rw.mountId);
    assert.match(rw.mountId, /^[a-f0-9]{64}$/);
    assert.equal(read(mdir, 'init-id'), `${rw.mountId}-init`);
    assert.equal(read(mdir, 'parent'), mid.chainId);
    assert.equal(fs.statSync(mdir).mode & 0o777, 0o755);
    // init layer sits between the image and the container layer
    const link = (id: string) => read(home, id, 'link');
    assert.equal(read(home, `${rw.mountId}-init`, 'lower'), `l/${link(mid.cacheId)}:l/${link(base.cacheId)}`);
    assert.equal(
      read(home, rw.mountId, 'lower'),
      `l/${link(`${rw.mountId}-init`)}:${read(home, `${rw.mountId}-init`, 'lower')}`,
    );
    assert.deepEqual(store.referenceCounts(mid.chainId), { refs: 1, children: 1 });

    const rootfs = await rw.mount();
    assert.equal(read(rootfs, 'etc', 'hosts'), '127.0.0.1 localhost\n');
    assert.equal(read(rootfs, 'etc', 'os-release'), 'ID=berth\nVERSION=2\n');
    assert.ok(!fs.existsSync(path.join(rootfs, 'gone')));
    fs.writeFileSync(path.join(rootfs, 'new-file'), 'hello');
    fs.rmSync(path.join(rootfs, 'bin', 'sh'));
    const md = await rw.metadata();
    assert.equal(md.MergedDir, rootfs);
    assert.equal(md.UpperDir, path.join(home, rw.mountId, 'diff'));

    const changes = await rw.changes();
    assert.deepEqual(changes.map((c) => `${c.kind}:${c.path}`).sort(), ['0:/bin', '1:/new-file', '2:/bin/sh'].sort());
    const diffTar = await collect(rw.tarStream());
    assert.ok(diffTar.includes(Buffer.from('new-file')));
    assert.ok(diffTar.includes(Buffer.from('bin/.wh.sh')));
    assert.equal(await rw.size(), 5);
    await rw.unmount();
    assert.deepEqual(mountsUnder(home), []);

    // reopen keeps it
    await store.close();
    store = await LayerStore.open(root);
    assert.equal(store.getRWLayer(ctr).mountId, rw.mountId);
    assert.deepEqual(store.referenceCounts(mid.chainId), { refs: 0, children: 1 });
    assert.deepEqual(await store.check(), []);
    await assert.rejects(store.createRWLayer(ctr, mid.chainId), /already exists/);

    // releasing the RW layer drops its parent reference; the unreferenced image layers then go
    const removed = await store.releaseRWLayer(ctr);
    assert.deepEqual(
      removed.map((m) => m.chainId),
      [mid.chainId, base.chainId],
    );
    assert.ok(!fs.existsSync(mdir));
    assert.deepEqual(fs.readdirSync(home), ['l']);
    assert.deepEqual(await store.check(), []);
  });
});

describe('open() repairs what a crash or corruption left', () => {
  test('sweeps tmp, -removing entries, orphan driver dirs and invalid entries (with their children)', async () => {
    const a = await store.register(Readable.from([tars[0] as Buffer]));
    const b = await store.register(Readable.from([tars[1] as Buffer]), a.chainId);
    const c = await store.register(Readable.from([tars[2] as Buffer]), b.chainId);
    const keep = await store.register(Readable.from([makeTar([{ name: 'keep', data: 'k' }])]));
    await store.close();
    // 1. an unfinished write set, 2. a driver dir no entry refers to (crash before the layerdb rename)
    fs.mkdirSync(path.join(layerdb, 'tmp', 'write-set-123'));
    fs.writeFileSync(path.join(layerdb, 'tmp', 'write-set-123', 'diff'), 'sha256:');
    const orphan = '0'.repeat(64);
    const drv = await (await import('../graphdriver/index.js')).Overlay2Driver.init(home);
    await drv.create(orphan, b.cacheId);
    // 3. a layer whose deletion was interrupted after the rename
    fs.renameSync(entry(c.chainId, ''), `${entry(c.chainId, '')}-abc-removing`);
    // 4. a corrupt entry (empty diff file): it and the layers on it go
    fs.writeFileSync(entry(a.chainId, 'diff'), '');
    store = await LayerStore.open(root);
    assert.deepEqual(
      store.list().map((l) => l.chainId),
      [keep.chainId],
    );
    assert.deepEqual(fs.readdirSync(path.join(layerdb, 'tmp')), []);
    assert.deepEqual(fs.readdirSync(path.join(layerdb, 'sha256')), [keep.chainId.slice(7)]);
    assert.deepEqual(fs.readdirSync(home).sort(), [keep.cacheId, 'l'].sort());
    assert.equal(fs.readdirSync(path.join(home, 'l')).length, 1);
    assert.deepEqual(await store.check(), []);
    store.get(keep.chainId);
    await store.release(keep.chainId);
    assert.deepEqual(fs.readdirSync(home), ['l']);
  });

  test('check() reports damage it finds', async () => {
    const l = await store.register(Readable.from([tars[0] as Buffer]));
    fs.writeFileSync(path.join(home, l.cacheId, 'diff', 'etc', 'os-release'), 'ID=tampered\n');
    fs.writeFileSync(entry(l.chainId, 'size'), '1');
    fs.mkdirSync(path.join(home, 'f'.repeat(64)));
    const problems = await store.check();
    assert.ok(
      problems.some((p) => p.includes('size file says 1')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.includes('does not verify')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.includes(`orphan directory ${'f'.repeat(64)}`)),
      problems.join('\n'),
    );
    fs.rmSync(path.join(home, 'f'.repeat(64)), { recursive: true });
    await store.release(l.chainId);
  });
});

describe('staged registration (extract first, attach the chain after)', () => {
  test('layers staged concurrently and out of order commit to the same chain and files as register()', async () => {
    const r2 = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-layer-staged-'));
    const s2 = await LayerStore.open(r2);
    // the same layers through plain register(), in a store of their own, as the reference
    const r3 = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-layer-seq-'));
    const s3 = await LayerStore.open(r3);
    let seqParent: Digest | undefined;
    for (const t of tars) seqParent = (await s3.register(Readable.from([t]), seqParent)).chainId;
    const ldb3 = path.join(r3, 'image', 'overlay2', 'layerdb');
    try {
      // extract all three at once, the last one first
      const staged = await Promise.all([2, 0, 1].map((i) => s2.stage(Readable.from([tars[i] as Buffer]))));
      const byDiff = new Map(staged.map((s) => [s.diffId, s]));
      assert.deepEqual(new Set(byDiff.keys()), new Set(diffIds));
      let parent: Digest | undefined;
      for (const d of diffIds) parent = (await s2.commitStaged(byDiff.get(d)!, parent)).chainId;
      assert.equal(parent, chains[2]);
      const h2 = path.join(r2, 'overlay2');
      const ldb2 = path.join(r2, 'image', 'overlay2', 'layerdb');
      for (const [i, c] of chains.entries()) {
        const e2 = (f: string) => path.join(ldb2, 'sha256', c.slice(7), f);
        for (const f of ['diff', 'size', 'parent']) {
          const mine = fs.existsSync(e2(f)) ? read(e2(f)) : undefined;
          const e3 = path.join(ldb3, 'sha256', c.slice(7), f);
          const ref = fs.existsSync(e3) ? read(e3) : undefined;
          assert.equal(mine, ref, `${f} of layer ${i}`);
        }
        const cache = read(e2('cache-id'));
        // base layer: no lower/work; children: work/ and a lower chain of l/ links, as create(id, parent) makes
        assert.equal(fs.existsSync(path.join(h2, cache, 'lower')), i > 0);
        assert.equal(fs.existsSync(path.join(h2, cache, 'work')), i > 0);
        if (i > 0) assert.equal(read(path.join(h2, cache, 'lower')).split(':').length, i);
        const l = s2.get(c);
        assert.ok((await collect(l.tarStream())).equals(tars[i] as Buffer));
        await s2.release(c);
      }
      assert.deepEqual(await s2.check(), []);
      // a duplicate staged layer is discarded on commit; a discarded one leaves nothing
      const dup = await s2.stage(Readable.from([tars[0] as Buffer]));
      const again = await s2.commitStaged(dup);
      assert.equal(again.chainId, chains[0]);
      const lonely = await s2.stage(Readable.from([makeTar([{ name: 'x', data: 'y' }])]));
      await lonely.discard();
      assert.deepEqual(await s2.check(), []);
      assert.equal(fs.readdirSync(path.join(ldb2, 'tmp')).length, 0);
      assert.equal(fs.readdirSync(h2).filter((n) => n !== 'l').length, 3);
    } finally {
      await s2.close();
      await s3.close();
      fs.rmSync(r2, { recursive: true, force: true });
      fs.rmSync(r3, { recursive: true, force: true });
    }
  });
});

describe('init layer templates', () => {
  test('the second init layer over the same parent is replayed from the first: the same tree, no initFunc run', async () => {
    // an image where moby's initlayer has work to do: /etc a symlink (whiteout, then an
    // opaque dir), /dev 0750 owned by nobody-ish with a /dev/console file, /sys whited out
    const a = await store.register(
      Readable.from([
        makeTar([
          { name: 'usr', type: 'dir' },
          { name: 'usr/etc', type: 'dir' },
          { name: 'etc', type: 'symlink', linkname: 'usr/etc' },
          { name: 'dev', type: 'dir', mode: 0o750 },
          { name: 'dev/console', data: 'not a device' },
          { name: 'sys', type: 'dir' },
        ]),
      ]),
    );
    const b = await store.register(Readable.from([makeTar([{ name: '.wh.sys', data: '' }])]), a.chainId);
    let runs = 0;
    const opts = {
      initFunc: async (r: string) => {
        runs++;
        await setupInitLayer(r);
      },
      initKey: initLayerKey(),
    };
    const ids = ['1', '2'].map((n) => n.repeat(64));
    const rw1 = await store.createRWLayer(ids[0]!, b.chainId, opts);
    const rw2 = await store.createRWLayer(ids[1]!, b.chainId, opts);
    assert.equal(runs, 1);
    const tree = (rw: { mountId: string }) => recordTree(path.join(home, `${rw.mountId}-init`, 'diff'));
    const t1 = tree(rw1);
    assert.ok(t1 && t1.length > 5);
    assert.deepEqual(tree(rw2), t1);
    const etc = t1.find((e) => e.rel === 'etc')!;
    assert.deepEqual(etc.xattrs, [['trusted.overlay.opaque', Buffer.from('y')]]);
    // what the container sees through the replayed layer
    const rootfs = await rw2.mount();
    try {
      assert.ok(fs.lstatSync(path.join(rootfs, 'etc')).isDirectory());
      assert.equal(fs.readFileSync(path.join(rootfs, 'etc', 'hosts'), 'utf8'), '');
      assert.equal(fs.readlinkSync(path.join(rootfs, 'etc', 'mtab')), '/proc/mounts');
      assert.equal(fs.readFileSync(path.join(rootfs, 'dev', 'console'), 'utf8'), '');
      assert.equal(fs.statSync(path.join(rootfs, 'dev')).mode & 0o777, 0o750);
      for (const d of ['proc', 'sys', 'dev/pts', 'dev/shm'])
        assert.ok(fs.statSync(path.join(rootfs, d)).isDirectory(), d);
    } finally {
      await rw2.unmount();
    }
    for (const id of ids) await store.releaseRWLayer(id);
    assert.deepEqual(await store.check(), []);
  });
});
