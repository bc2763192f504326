// Cold pull (and push with every layer uploaded) of a 5-layer, ~200 MB
// (uncompressed) gzip image from a loopback docker-registry: berth's
// DistributionService vs the reference dockerd (docker pull/push inside its
// network namespace, from a registry listening there on the same storage).
// Not a test: prints numbers. Run: node dist/bench/pull.js [MB] [--runs N] [--berth-only]
// With --runs N (default 3) berth and the reference take turns N times (pull
// and push each; who goes first alternates), after one untimed warm-up round
// (--no-warmup skips it); medians are reported, with load averages, since the
// machine is shared. --berth-only skips the reference
// (profiling: node --cpu-prof dist/bench/pull.js 200 --berth-only --runs 1).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { schema2Manifest } from '../src/distribution/push.js';
import { MediaType, sha256 } from '../src/oci/index.js';
import { openEngine } from '../test/integration/pull-push-kit.js';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../test/kit/reference-dockerd.js';
import { pushBlob, pushManifest } from '../test/registry/helpers.js';
import { makeTree, tarTree } from './data.js';
import { machineNote, median, settle, timeAsync } from './util.js';

const argv = process.argv.slice(2);
const flag = (n: string) => argv.includes(n);
const opt = (n: string) => {
  const i = argv.indexOf(n);
  return i >= 0 ? argv[i + 1] : undefined;
};
const MB = Number(argv.find((a) => /^\d+$/.test(a) && argv[argv.indexOf(a) - 1] !== '--runs') ?? 200);
const RUNS = Math.max(1, Number(opt('--runs') ?? 3));
const BERTH_ONLY = flag('--berth-only');
const WARMUP = !flag('--no-warmup');
const loadavg = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const LAYERS = 5;
const BASE = process.env.BENCH_DIR ?? os.tmpdir();

function startRegistry(root: string, netnsPid?: number): Promise<{ url: string; child: ChildProcess }> {
  const cfg = path.join(root, `..`, `cfg-${path.basename(root)}-${netnsPid ?? 'host'}.yml`);
  fs.writeFileSync(
    cfg,
    `version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${root}\nhttp:\n  addr: 127.0.0.1:0\n  secret: bench\n`,
  );
  const cmd = netnsPid ? '/usr/bin/nsenter' : '/usr/bin/docker-registry';
  const args = netnsPid ? [`--net=/proc/${netnsPid}/ns/net`, '/usr/bin/docker-registry', 'serve', cfg] : ['serve', cfg];
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onExit = () => child.kill('SIGKILL');
  process.once('exit', onExit);
  child.once('exit', () => process.off('exit', onExit));
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`registry did not start: ${buf}`)), 15000);
    const on = (d: Buffer) => {
      buf += d;
      const m = /listening on (127\.0\.0\.1:\d+)/.exec(buf);
      if (m) {
        clearTimeout(t);
        child.stdout!.resume();
        child.stderr!.resume();
        resolve({ url: `http://${m[1]}`, child });
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
  });
}

async function main() {
  console.log(`bench/pull: ${LAYERS} layers, ${MB} MB uncompressed; ${machineNote()}`);
  const work = fs.mkdtempSync(path.join(BASE, 'bench-pull-'));
  const regRoot = path.join(work, 'reg');
  fs.mkdirSync(regRoot);
  const reg = await startRegistry(regRoot);
  try {
    // the image
    const blobs: Buffer[] = [];
    const diffIds: string[] = [];
    // the trees are written on tmpfs when there is one: creating and deleting
    // ~10,000 files on the disk under test would slow the runs that follow
    // (ext4 without a journal skips recently deleted inodes when allocating)
    const scratch = fs.existsSync('/dev/shm') ? fs.mkdtempSync('/dev/shm/bench-pull-') : work;
    for (let i = 0; i < LAYERS; i++) {
      const dir = path.join(scratch, `l${i}`);
      makeTree(dir, Math.floor((MB * 1e6) / LAYERS), `layer${i}`);
      const tarPath = path.join(scratch, `l${i}.tar`);
      tarTree(dir, tarPath);
      const tar = fs.readFileSync(tarPath);
      diffIds.push(sha256(tar));
      blobs.push(gzipSync(tar));
      fs.rmSync(dir, { recursive: true });
      fs.rmSync(tarPath);
    }
    if (scratch !== work) fs.rmSync(scratch, { recursive: true, force: true });
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIds } }),
    );
    const layers = blobs.map((b) => ({ mediaType: MediaType.dockerLayerGzip, size: b.length, digest: sha256(b) }));
    const manifest = schema2Manifest(
      { mediaType: MediaType.dockerConfig, size: config.length, digest: sha256(config) },
      layers,
    );
    for (const b of [...blobs, config]) await pushBlob(reg.url, 'bench', b);
    await pushManifest(reg.url, 'bench', 'latest', manifest, MediaType.dockerManifest);
    const compressed = blobs.reduce((a, b) => a + b.length, 0);
    console.log(`image: ${(compressed / 1e6).toFixed(1)} MB compressed`);
    blobs.length = 0;

    const host = new URL(reg.url).host;
    const push2Root = path.join(work, 'reg2');
    fs.mkdirSync(push2Root);
    const reg2 = await startRegistry(push2Root);
    const host2 = new URL(reg2.url).host;
    const why = BERTH_ONLY ? 'skipped (--berth-only)' : referenceDockerdUnavailable();
    // Nothing is deleted between runs (each run gets fresh roots; all are removed
    // at the end), for the same reason as above: deletions slow later file creation.
    const roots: string[] = [];
    const daemons: ReferenceDockerd[] = [];
    const res = {
      berthPull: [] as number[],
      berthPush: [] as number[],
      refPull: [] as number[],
      refPush: [] as number[],
    };
    console.log(`load average before: ${loadavg()}`);
    try {
      const label = (run: number) => (run === 0 ? 'warm-up (not counted)' : `run ${run}`);
      // berth: a fresh data-root each run (cold pull), then a push to an empty repository
      const berthRun = async (run: number) => {
        const e = await openEngine({ retryBaseMs: 1000, maxAttempts: 5 });
        roots.push(e.root);
        try {
          settle();
          const bp = await timeAsync(() => e.dist.pull(`${host}/bench:latest`));
          settle();
          e.service.tag(`${host}/bench:latest`, `${host2}/berth${run}:latest`);
          const bu = await timeAsync(() => e.dist.push(`${host2}/berth${run}:latest`));
          res.berthPull.push(bp);
          res.berthPush.push(bu);
          console.log(
            `${label(run)}: berth pull ${bp.toFixed(2)} s (${(MB / bp).toFixed(0)} MB/s), push ${bu.toFixed(2)} s; load ${loadavg()}`,
          );
        } finally {
          await e.close();
        }
      };
      // the reference: a fresh daemon (cold pull), its registries inside its network
      // namespace on the same storage, push to an empty registry root
      const refRun = async (run: number) => {
        const d = await ReferenceDockerd.start({ baseDir: BASE });
        daemons.push(d);
        spawnSync('nsenter', [`--net=/proc/${d.pid}/ns/net`, 'ip', 'link', 'set', 'lo', 'up']);
        const inner = await startRegistry(regRoot, d.pid);
        const ihost = new URL(inner.url).host;
        const pushRoot = path.join(work, `reg3-${run}`);
        fs.mkdirSync(pushRoot);
        const inner2 = await startRegistry(pushRoot, d.pid);
        const i2 = new URL(inner2.url).host;
        try {
          settle();
          const t0 = process.hrtime.bigint();
          await d.dockerOk(['pull', '-q', `${ihost}/bench:latest`], { timeoutMs: 600_000 });
          const rp = Number(process.hrtime.bigint() - t0) / 1e9;
          await d.dockerOk(['tag', `${ihost}/bench:latest`, `${i2}/bench:latest`]);
          settle();
          const t1 = process.hrtime.bigint();
          await d.dockerOk(['push', `${i2}/bench:latest`], { timeoutMs: 600_000 });
          const ru = Number(process.hrtime.bigint() - t1) / 1e9;
          res.refPull.push(rp);
          res.refPush.push(ru);
          console.log(`${label(run)}: reference pull ${rp.toFixed(2)} s, push ${ru.toFixed(2)} s; load ${loadavg()}`);
        } finally {
          inner.child.kill('SIGTERM');
          inner2.child.kill('SIGTERM');
          await d.stop();
        }
      };
      // the order alternates: whoever goes first in a run meets the file system right after the
      // other's writes (and, in run 1, right after the previous benchmark's clean-up)
      // run 0 is an untimed warm-up of both (discarded), for the same reason
      for (let run = WARMUP ? 0 : 1; run <= RUNS; run++) {
        if (run === 1) for (const xs of Object.values(res)) xs.length = 0;
        if (why || run % 2 === 1) {
          await berthRun(run);
          if (!why) await refRun(run);
        } else {
          await refRun(run);
          await berthRun(run);
        }
      }
    } finally {
      for (const d of daemons) await d.destroy();
      for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
      reg2.child.kill('SIGTERM');
    }
    console.log(`load average after: ${loadavg()}`);
    const m = (xs: number[]) => median(xs);
    console.log(
      `berth (median of ${RUNS}): pull ${m(res.berthPull).toFixed(2)} s (${(MB / m(res.berthPull)).toFixed(0)} MB/s), push ${m(res.berthPush).toFixed(2)} s`,
    );
    if (why) {
      console.log(`reference dockerd: ${why}`);
      return;
    }
    console.log(
      `reference dockerd (median of ${RUNS}): pull ${m(res.refPull).toFixed(2)} s, push ${m(res.refPush).toFixed(2)} s`,
    );
    const ratios = (a: number[], b: number[]) => a.map((x, i) => (x / b[i]!).toFixed(2)).join(' ');
    console.log(
      `ratio (reference time / berth time, medians): pull ${(m(res.refPull) / m(res.berthPull)).toFixed(2)}x (target >= 2.0), push ${(m(res.refPush) / m(res.berthPush)).toFixed(2)}x (target >= 1.5); per run: pull ${ratios(res.refPull, res.berthPull)}, push ${ratios(res.refPush, res.berthPush)}`,
    );
  } finally {
    reg.child.kill('SIGTERM');
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
