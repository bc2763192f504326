// Interop with the real dockerd (Debian docker.io 20.10) on the same
// data-root, both ways. Skipped when dockerd is not installed.
//  - moby → berth: `docker load` + `docker create`, then berth opens the root:
//    every layer and the container's RW layer load, check() (sizes, links,
//    lower chains, tar-split reassembly) finds nothing wrong.
//  - berth → moby: berth registers the layers (an image config is dropped
//    into imagedb by hand), dockerd inspects, saves (reassembling each tar from
//    berth's tar-split) byte-identically, and creates a container on them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../../test/kit/reference-dockerd.js';
import { chainIds, type Digest, sha256 } from '../oci/index.js';
import { LayerStore } from './index.js';
import { makeTar } from './tar-fixture.js';

// The reference dockerd always runs in its own network and mount namespaces
// (test/kit): never on the host network, where --bridge=none would touch docker0.
const unavailable = referenceDockerdUnavailable();

const tars = [
  makeTar([
    { name: 'etc', type: 'dir' },
    { name: 'etc/os-release', data: 'ID=berth\n' },
    { name: 'bin', type: 'dir' },
    { name: 'bin/sh', data: Buffer.alloc(5000, 7), mode: 0o755 },
    { name: 'gone', data: 'x' },
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
const config = Buffer.from(
  JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
  }),
);
const imageId = sha256(config);

const roots: string[] = [];
after(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('interop with dockerd', { skip: unavailable ?? false, timeout: 90_000 }, () => {
  test('moby → berth: berth loads and verifies what dockerd wrote', async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-moby-'));
    roots.push(base);
    const img = path.join(base, 'img');
    fs.mkdirSync(img);
    for (const [i, t] of tars.entries()) fs.writeFileSync(path.join(img, `l${i}.tar`), t);
    fs.writeFileSync(path.join(img, 'config.json'), config);
    const manifest = [{ Config: 'config.json', RepoTags: ['interop:1'], Layers: tars.map((_t, i) => `l${i}.tar`) }];
    fs.writeFileSync(path.join(img, 'manifest.json'), JSON.stringify(manifest));
    execFileSync('tar', ['-C', img, '-cf', path.join(base, 'img.tar'), '.']);
    const data = path.join(base, 'data');
    const d = await ReferenceDockerd.start({ dataRoot: data, baseDir: base });
    let ctr: string;
    let mobyStatus: string;
    try {
      await d.dockerOk(['load', '-i', path.join(base, 'img.tar')]);
      ctr = (await d.dockerOk(['create', 'interop:1'])).trim();
      mobyStatus = (await d.dockerOk(['info', '--format', '{{json .DriverStatus}}'])).trim();
    } finally {
      await d.destroy();
    }
    const store = await LayerStore.open(data);
    try {
      assert.deepEqual(
        store
          .list()
          .map((l) => l.chainId)
          .sort(),
        [...chains].sort(),
      );
      assert.deepEqual(JSON.stringify(store.driverStatus()), mobyStatus);
      const rw = store.getRWLayer(ctr);
      assert.equal(rw.parent, chains[2]);
      assert.equal(rw.initId, `${rw.mountId}-init`);
      assert.deepEqual(await store.check(), []);
      for (const c of chains) {
        const l = store.get(c as Digest);
        assert.ok((await collect(l.tarStream())).equals(tars[chains.indexOf(c)] as Buffer));
        await store.release(l.chainId);
      }
    } finally {
      await store.close();
    }
  });

  test('berth → moby: dockerd inspects, saves byte-identical layers and creates a container', async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-moby-'));
    roots.push(base);
    const data = path.join(base, 'data');
    const store = await LayerStore.open(data);
    let parent: Digest | undefined;
    for (const t of tars) parent = (await store.register(Readable.from([t]), parent)).chainId;
    const totalSize = store.peek(parent as Digest)?.totalSize;
    await store.close();
    // the image store's job, done by hand here: the config in imagedb
    const idb = path.join(data, 'image', 'overlay2', 'imagedb', 'content', 'sha256');
    fs.mkdirSync(idb, { recursive: true });
    fs.writeFileSync(path.join(idb, imageId.slice(7)), config);
    const d = await ReferenceDockerd.start({ dataRoot: data, baseDir: base });
    try {
      assert.equal(
        (await d.dockerOk(['image', 'inspect', '--format', '{{.Size}}', imageId])).trim(),
        String(totalSize),
      );
      await d.dockerOk(['save', '-o', path.join(base, 'saved.tar'), imageId]);
      const out = path.join(base, 'saved');
      fs.mkdirSync(out);
      execFileSync('tar', ['-C', out, '-xf', path.join(base, 'saved.tar')]);
      const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'))[0] as { Layers: string[] };
      assert.deepEqual(
        m.Layers.map((l) => sha256(fs.readFileSync(path.join(out, l)))),
        diffIds,
      );
      const ctr = (await d.dockerOk(['create', imageId])).trim();
      assert.ok((await d.dockerOk(['export', ctr])).includes('app/main.js'));
    } finally {
      await d.destroy();
    }
    // and berth reads dockerd's container back
    const again = await LayerStore.open(data);
    try {
      assert.equal(again.listRWLayers().length, 1);
      assert.deepEqual(await again.check(), []);
    } finally {
      await again.close();
    }
  });
});
