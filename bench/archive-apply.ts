// Micro-benchmark: applyLayer (sha256 + tar-split + extraction, one pass) vs
// `tar -x` plus `sha256sum` of the same ~200 MB layer tar. Prints the
// throughput ratio (baseline time / applyLayer time; ≥ 0.8 is the target).
//   node dist/bench/archive-apply.js [MiB] [runs]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { applyLayer } from '../src/archive/index.js';
import { makeTree, tarTree } from './data.js';
import { machineNote, median, settle, sh, timeAsync, timeSync } from './util.js';

const mib = Number(process.argv[2] ?? 200);
const runs = Number(process.argv[3] ?? 3);
const work = path.join(process.env.BENCH_DIR ?? os.tmpdir(), `berth-bench-archive-${mib}`);
const tree = path.join(work, 'tree');
const tarPath = path.join(work, 'layer.tar');
if (!fs.existsSync(tarPath)) {
  fs.rmSync(work, { recursive: true, force: true });
  makeTree(tree, mib * 1024 * 1024);
  tarTree(tree, tarPath);
  fs.rmSync(tree, { recursive: true, force: true });
}
const tarBytes = fs.statSync(tarPath).size;
const out = path.join(work, 'out');

const base: number[] = [];
const ours: number[] = [];
for (let i = 0; i < runs; i++) {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out);
  settle();
  base.push(
    timeSync(() => {
      sh('tar', ['-xf', tarPath, '-C', out]);
      sh('sha256sum', [tarPath]);
    }),
  );
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out);
  settle();
  ours.push(
    await timeAsync(() =>
      applyLayer(fs.createReadStream(tarPath, { highWaterMark: 1 << 20 }), out, {
        tarSplitPath: path.join(work, 'tar-split.json.gz'),
        whiteouts: 'overlay',
      }),
    ),
  );
}
fs.rmSync(out, { recursive: true, force: true });
const b = median(base);
const o = median(ours);
const mb = tarBytes / 1e6;
console.log(machineNote());
console.log(`tar: ${mb.toFixed(1)} MB; runs: ${runs} (median)`);
console.log(
  `tar -x + sha256sum: ${b.toFixed(3)} s (${(mb / b).toFixed(0)} MB/s)  [${base.map((x) => x.toFixed(3)).join(', ')}]`,
);
console.log(
  `applyLayer:         ${o.toFixed(3)} s (${(mb / o).toFixed(0)} MB/s)  [${ours.map((x) => x.toFixed(3)).join(', ')}]`,
);
console.log(`throughput ratio applyLayer / (tar -x + sha256sum): ${(b / o).toFixed(2)}`);
