// Differential tests against the reference moby dockerd (Debian docker.io 20.10):
// (a) images saved by dockerd, loaded by berth into a fresh data-root, are
//     served by a dockerd started on that data-root (same IDs/tags/sizes,
//     byte-exact layer tars, containers run);
// (b) a data-root written by dockerd is read by berth (same images, layer
//     tars rebuilt byte-identical), and berth's `docker save` of it is
//     accepted by dockerd's `docker load` with the same v1 layout.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImageService, ImageStore, imagePaths, loadImages, ReferenceStore, saveImages } from '../../src/image/index.js';
import { LayerStore } from '../../src/layer/index.js';
import { chainIds, type Digest } from '../../src/oci/index.js';
import { makeFixtureImages } from '../kit/fixture-images.js';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../kit/reference-dockerd.js';

const skip = referenceDockerdUnavailable();
if (skip) console.log(`# skipping moby-compat: ${skip}`);

interface Row {
  id: string;
  repo: string;
  tag: string;
  size: number;
}

async function imageRows(d: ReferenceDockerd): Promise<Row[]> {
  const out = await d.dockerOk(['images', '-a', '--no-trunc', '--format', '{{.ID}} {{.Repository}} {{.Tag}}']);
  const rows: Row[] = [];
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const [id, repo, tag] = line.split(' ') as [string, string, string];
    const size = Number((await d.dockerOk(['image', 'inspect', '--format', '{{.Size}}', id])).trim());
    rows.push({ id, repo, tag, size });
  }
  return rows
    .filter((r) => r.repo !== '<none>')
    .sort((a, b) => `${a.repo}:${a.tag}`.localeCompare(`${b.repo}:${b.tag}`));
}

function untar(file: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('tar', ['-xf', file, '-C', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar -xf ${file}: ${r.stderr}`);
}

const sha256File = (f: string) => `sha256:${createHash('sha256').update(fs.readFileSync(f)).digest('hex')}`;

/** diff ID → sha256 of the layer.tar a (20.10) save tar holds for it, checked against the configs. */
function saveLayerDigests(dir: string): Map<string, string> {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
    Config: string;
    Layers: string[];
  }[];
  const out = new Map<string, string>();
  for (const m of manifest) {
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, m.Config), 'utf8')) as { rootfs: { diff_ids: string[] } };
    for (const [i, l] of m.Layers.entries()) out.set(cfg.rootfs.diff_ids[i]!, sha256File(path.join(dir, l)));
  }
  return out;
}

async function openBerth(dataRoot: string) {
  const p = imagePaths(dataRoot);
  const layers = await LayerStore.open(dataRoot);
  const images = ImageStore.open(p.imagedb, layers);
  const refs = ReferenceStore.open(p.repositories);
  return { layers, images, refs, service: new ImageService(images, refs), paths: p };
}

async function streamDigest(s: NodeJS.ReadableStream): Promise<string> {
  const h = createHash('sha256');
  for await (const c of s) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

describe('moby compatibility (reference dockerd 20.10)', { skip, timeout: 170_000 }, () => {
  let work: string;
  let refA: ReferenceDockerd;
  let rowsA: Row[];
  let saveTar: string;
  let saveDir: string;
  let reposA: string;

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'moby-compat-'));
    refA = await ReferenceDockerd.start({ baseDir: work });
    await makeFixtureImages(refA, work);
    rowsA = await imageRows(refA);
    saveTar = path.join(work, 'a-save.tar');
    await refA.dockerOk(['save', '-o', saveTar, 'bbase:1', 'multi:v1', 'other/multi:latest']);
    saveDir = path.join(work, 'a-save');
    untar(saveTar, saveDir);
    await refA.stop();
    reposA = fs.readFileSync(path.join(refA.dataRoot, 'image/overlay2/repositories.json'), 'utf8');
  });

  after(async () => {
    await refA?.stop();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  test('(a) berth loads a dockerd save tar; dockerd serves the berth data-root', async () => {
    const root = path.join(work, 'berth-a');
    const b = await openBerth(root);
    const res = await loadImages(fs.createReadStream(saveTar), {
      images: b.images,
      refs: b.refs,
      layers: b.layers,
      tmpRoot: b.paths.tmp,
    });
    assert.deepEqual(res.messages.filter((m) => m.startsWith('Loaded image:')).sort(), [
      'Loaded image: bbase:1',
      'Loaded image: multi:v1',
      'Loaded image: other/multi:latest',
    ]);
    // berth's own view matches dockerd's
    const berthRows = b.service
      .list()
      .flatMap((s) =>
        s.RepoTags.map((t) => ({
          id: s.Id,
          repo: t.slice(0, t.lastIndexOf(':')),
          tag: t.slice(t.lastIndexOf(':') + 1),
          size: s.Size,
        })),
      )
      .sort((x, y) => `${x.repo}:${x.tag}`.localeCompare(`${y.repo}:${y.tag}`));
    assert.deepEqual(berthRows, rowsA);
    // repositories.json is byte-identical to what dockerd wrote for the same tags
    assert.equal(fs.readFileSync(b.paths.repositories, 'utf8'), reposA);
    await b.layers.close();

    const refB = await ReferenceDockerd.start({ baseDir: work, dataRoot: root });
    try {
      assert.deepEqual(await imageRows(refB), rowsA);
      const inspect = JSON.parse(await refB.dockerOk(['image', 'inspect', 'multi:v1'])) as {
        Id: string;
        RootFS: { Layers: string[] };
      }[];
      assert.equal(inspect[0]!.Id, rowsA.find((r) => r.repo === 'multi')!.id);
      // dockerd rebuilds each layer tar from berth's tar-split + overlay2 dirs
      const bSave = path.join(work, 'b-save.tar');
      await refB.dockerOk(['save', '-o', bSave, 'multi:v1', 'bbase:1']);
      const bDir = path.join(work, 'b-save');
      untar(bSave, bDir);
      const digests = saveLayerDigests(bDir);
      assert.equal(digests.size, 4);
      for (const [diffId, got] of digests) assert.equal(got, diffId, `layer ${diffId} from dockerd on berth's root`);
      // and runs containers on berth's layers (whiteouts/opaque dirs applied right)
      const run = await refB.dockerOk([
        'run',
        '--rm',
        '--network',
        'none',
        'multi:v1',
        '/bin/sh',
        '-c',
        'echo ok; ls /d; ls /d/sub; cat /third; cat /d/hard',
      ]);
      assert.deepEqual(
        run.trim().split('\n'),
        ['ok', `hard\n${'n'.repeat(150)}\nsub`.split('\n'), 'g', 'third', 'x'].flat(),
      );
    } finally {
      await refB.destroy();
    }
  });

  test('(b) berth reads a dockerd data-root, rebuilds identical layer tars, and its save loads in dockerd', async () => {
    const b = await openBerth(refA.dataRoot);
    try {
      const rows = b.service
        .list()
        .flatMap((s) =>
          s.RepoTags.map((t) => ({
            id: s.Id,
            repo: t.slice(0, t.lastIndexOf(':')),
            tag: t.slice(t.lastIndexOf(':') + 1),
            size: s.Size,
          })),
        )
        .sort((x, y) => `${x.repo}:${x.tag}`.localeCompare(`${y.repo}:${y.tag}`));
      assert.deepEqual(rows, rowsA);
      assert.equal(b.refs.serialize(), reposA);
      // every layer's tar, rebuilt from dockerd's tar-split.json.gz + diff dir
      const fromSave = saveLayerDigests(saveDir);
      for (const id of b.images.ids()) {
        const img = b.images.get(id);
        const chain = chainIds(img.config.rootfs.diff_ids);
        for (const [i, c] of chain.entries()) {
          const l = b.layers.get(c);
          try {
            const got = await streamDigest(l.tarStream());
            assert.equal(got, img.config.rootfs.diff_ids[i]);
            if (fromSave.has(got)) assert.equal(fromSave.get(got), got);
          } finally {
            await b.layers.release(c as Digest);
          }
        }
      }
      // berth's save (20.10 layout) compared with dockerd's, then loaded by dockerd
      const berthSave = path.join(work, 'berth-save.tar');
      const ws = fs.createWriteStream(berthSave);
      await saveImages(['bbase:1', 'multi:v1', 'other/multi:latest'], ws, {
        images: b.images,
        refs: b.refs,
        layers: b.layers,
        tmpRoot: b.paths.tmp,
      });
      ws.end();
      await once(ws, 'finish');
      const berthDir = path.join(work, 'berth-save');
      untar(berthSave, berthDir);
      const list = (d: string) =>
        spawnSync('find', ['.', '-mindepth', '1'], { cwd: d, encoding: 'utf8' }).stdout.trim().split('\n').sort();
      assert.deepEqual(list(berthDir), list(saveDir), 'same member names (v1 IDs) as dockerd 20.10');
      for (const f of list(saveDir)) {
        const a = path.join(saveDir, f);
        if (fs.lstatSync(a).isDirectory() || f === './manifest.json') continue;
        assert.equal(sha256File(path.join(berthDir, f)), sha256File(a), `${f} differs from dockerd's save`);
      }
      const norm = (d: string) =>
        (JSON.parse(fs.readFileSync(path.join(d, 'manifest.json'), 'utf8')) as { Config: string }[]).sort((x, y) =>
          x.Config.localeCompare(y.Config),
        );
      assert.deepEqual(norm(berthDir), norm(saveDir));
    } finally {
      await b.layers.close();
    }
    const refC = await ReferenceDockerd.start({ baseDir: work });
    try {
      const out = await refC.dockerOk(['load', '-i', path.join(work, 'berth-save.tar')]);
      assert.match(out, /Loaded image: multi:v1/);
      assert.deepEqual(await imageRows(refC), rowsA);
      assert.equal(
        (await refC.dockerOk(['run', '--rm', '--network', 'none', 'other/multi', '/bin/busybox', 'echo', 'ok'])).trim(),
        'ok',
      );
    } finally {
      await refC.destroy();
    }
  });
});
