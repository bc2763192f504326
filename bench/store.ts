// Issue-2 benchmarks, side by side in one run (never part of the test suite):
//  1. register: LayerStore.register of a 200 MB layer tar (half random, half text)
//     vs `tar -x` followed by `sha256sum` of the same tar on the same disk.
//  2. load: berth's load of a 5-layer 200 MB `docker save` tar into a fresh
//     data-root vs the reference dockerd's `docker load` of the same tar.
//   node dist/bench/store.js [register|load|all] [runs]
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ImageStore, imagePaths, loadImages, ReferenceStore } from '../src/image/index.js';
import { LayerStore } from '../src/layer/index.js';
import { makeBusyboxRootfsTar } from '../test/kit/fixture-images.js';
import { ReferenceDockerd } from '../test/kit/reference-dockerd.js';
import { makeTree, tarTree } from './data.js';
import { machineNote, median, settle, sh, timeAsync, timeSync } from './util.js';

const which = process.argv[2] ?? 'all';
const runs = Number(process.argv[3] ?? 3);
const work = path.join(process.env.BENCH_DIR ?? '/var/tmp', 'berth-bench-store');
fs.mkdirSync(work, { recursive: true });

async function berthLoad(tarPath: string, root: string): Promise<void> {
  const layers = await LayerStore.open(root);
  const p = imagePaths(root);
  const images = ImageStore.open(p.imagedb, layers);
  const refs = ReferenceStore.open(p.repositories);
  await loadImages(fs.createReadStream(tarPath, { highWaterMark: 1 << 20 }), {
    images,
    refs,
    layers,
    tmpRoot: p.tmp,
  });
  await layers.close();
}

async function benchRegister(): Promise<string> {
  const tarPath = path.join(work, 'layer-200.tar');
  if (!fs.existsSync(tarPath)) {
    const tree = path.join(work, 'tree');
    fs.rmSync(tree, { recursive: true, force: true });
    makeTree(tree, 200 * 1024 * 1024);
    tarTree(tree, tarPath);
    fs.rmSync(tree, { recursive: true, force: true });
  }
  const mb = fs.statSync(tarPath).size / 1e6;
  const base: number[] = [];
  const ours: number[] = [];
  for (let i = 0; i < runs; i++) {
    const out = path.join(work, 'x');
    fs.rmSync(out, { recursive: true, force: true });
    fs.mkdirSync(out);
    settle();
    base.push(
      timeSync(() => {
        sh('tar', ['-xf', tarPath, '-C', out]);
        sh('sha256sum', [tarPath]);
        sh('sync', []);
      }),
    );
    fs.rmSync(out, { recursive: true, force: true });
    const root = path.join(work, 'root-register');
    fs.rmSync(root, { recursive: true, force: true });
    const store = await LayerStore.open(root);
    settle();
    ours.push(
      await timeAsync(async () => {
        await store.register(fs.createReadStream(tarPath, { highWaterMark: 1 << 20 }));
        sh('sync', []);
      }),
    );
    await store.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
  const b = median(base);
  const o = median(ours);
  return [
    `register ${mb.toFixed(0)} MB layer, median of ${runs} (each followed by sync):`,
    `  tar -x + sha256sum      ${b.toFixed(2)} s  ${(mb / b).toFixed(0)} MB/s   [${base.map((x) => x.toFixed(2)).join(' ')}]`,
    `  berth LayerStore.register ${o.toFixed(2)} s  ${(mb / o).toFixed(0)} MB/s   [${ours.map((x) => x.toFixed(2)).join(' ')}]`,
    `  throughput ratio berth/reference = ${(b / o).toFixed(2)} (target >= 0.80)`,
  ].join('\n');
}

async function benchLoad(): Promise<string> {
  const d = await ReferenceDockerd.start({ baseDir: work });
  try {
    const tarPath = path.join(work, 'image-5x40.tar');
    if (!fs.existsSync(tarPath)) {
      const ctx = path.join(work, 'ctx');
      fs.rmSync(ctx, { recursive: true, force: true });
      fs.mkdirSync(ctx, { recursive: true });
      // base layer: busybox rootfs + 40 MB; then four COPY layers of 40 MB each
      const baseDir = path.join(work, 'base');
      fs.rmSync(baseDir, { recursive: true, force: true });
      fs.mkdirSync(baseDir);
      await makeBusyboxRootfsTar(baseDir);
      const extra = path.join(baseDir, 'rootfs', 'data0');
      makeTree(extra, 40 * 1024 * 1024, 'layer0');
      tarTree(path.join(baseDir, 'rootfs'), path.join(baseDir, 'base-big.tar'));
      await d.dockerOk(['import', path.join(baseDir, 'base-big.tar'), 'benchbase:1'], { timeoutMs: 300_000 });
      let dockerfile = 'FROM benchbase:1\n';
      for (let i = 1; i <= 4; i++) {
        makeTree(path.join(ctx, `l${i}`), 40 * 1024 * 1024, `layer${i}`);
        dockerfile += `COPY l${i} /data${i}\n`;
      }
      fs.writeFileSync(path.join(ctx, 'Dockerfile'), dockerfile);
      await d.dockerOk(['build', '--network', 'none', '-q', '-t', 'bench5:1', ctx], {
        env: { DOCKER_BUILDKIT: '0' },
        timeoutMs: 600_000,
      });
      await d.dockerOk(['save', '-o', tarPath, 'bench5:1'], { timeoutMs: 300_000 });
      fs.rmSync(ctx, { recursive: true, force: true });
      fs.rmSync(baseDir, { recursive: true, force: true });
    }
    const mb = fs.statSync(tarPath).size / 1e6;
    const ref: number[] = [];
    const ours: number[] = [];
    for (let i = 0; i < runs; i++) {
      await d.docker(['rmi', '-f', 'bench5:1', 'benchbase:1']);
      await d.docker(['image', 'prune', '-f']);
      settle();
      ref.push(
        await timeAsync(async () => {
          await d.dockerOk(['load', '-q', '-i', tarPath], { timeoutMs: 300_000 });
          sh('sync', []);
        }),
      );
      const root = path.join(work, 'root-load');
      await fsp.rm(root, { recursive: true, force: true });
      settle();
      ours.push(
        await timeAsync(async () => {
          await berthLoad(tarPath, root);
          sh('sync', []);
        }),
      );
      await fsp.rm(root, { recursive: true, force: true });
    }
    const r = median(ref);
    const o = median(ours);
    return [
      `load ${mb.toFixed(0)} MB 5-layer docker-save tar, median of ${runs} (each followed by sync):`,
      `  reference docker load   ${r.toFixed(2)} s   [${ref.map((x) => x.toFixed(2)).join(' ')}]`,
      `  berth load              ${o.toFixed(2)} s   [${ours.map((x) => x.toFixed(2)).join(' ')}]`,
      `  time ratio berth/reference = ${(o / r).toFixed(2)} (target <= 0.80)`,
    ].join('\n');
  } finally {
    await d.destroy();
  }
}

console.log(machineNote());
if (which === 'register' || which === 'all') console.log(await benchRegister());
if (which === 'load' || which === 'all') console.log(await benchLoad());
