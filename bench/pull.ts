// Cold pull (and push with every layer uploaded) of a 5-layer, ~200 MB
// (uncompressed) gzip image from a loopback docker-registry: berth's
// DistributionService vs the reference dockerd (docker pull/push inside its
// network namespace, from a registry listening there on the same storage).
// Not a test: prints numbers. Run: node dist/bench/pull.js [MB]
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
import { machineNote, settle, timeAsync } from './util.js';

const MB = Number(process.argv[2] ?? 200);
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
  process.once('exit', () => child.kill('SIGKILL'));
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
    for (let i = 0; i < LAYERS; i++) {
      const dir = path.join(work, `l${i}`);
      makeTree(dir, Math.floor((MB * 1e6) / LAYERS), `layer${i}`);
      const tarPath = path.join(work, `l${i}.tar`);
      tarTree(dir, tarPath);
      const tar = fs.readFileSync(tarPath);
      diffIds.push(sha256(tar));
      blobs.push(gzipSync(tar));
      fs.rmSync(dir, { recursive: true });
      fs.rmSync(tarPath);
    }
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

    // berth
    const host = new URL(reg.url).host;
    const e = await openEngine({ retryBaseMs: 1000, maxAttempts: 5 });
    settle();
    const berthPull = await timeAsync(() => e.dist.pull(`${host}/bench:latest`));
    settle();
    const push2Root = path.join(work, 'reg2');
    fs.mkdirSync(push2Root);
    const reg2 = await startRegistry(push2Root);
    e.service.tag(`${host}/bench:latest`, `${new URL(reg2.url).host}/bench:latest`);
    const berthPush = await timeAsync(() => e.dist.push(`${new URL(reg2.url).host}/bench:latest`));
    reg2.child.kill('SIGTERM');
    await e.close();
    console.log(
      `berth: pull ${berthPull.toFixed(2)} s (${(MB / berthPull).toFixed(0)} MB/s), push ${berthPush.toFixed(2)} s`,
    );

    // reference dockerd
    const why = referenceDockerdUnavailable();
    if (why) {
      console.log(`reference dockerd unavailable: ${why}`);
      return;
    }
    const d = await ReferenceDockerd.start({ baseDir: BASE });
    try {
      spawnSync('nsenter', [`--net=/proc/${d.pid}/ns/net`, 'ip', 'link', 'set', 'lo', 'up']);
      const inner = await startRegistry(regRoot, d.pid);
      const ihost = new URL(inner.url).host;
      settle();
      const t0 = process.hrtime.bigint();
      await d.dockerOk(['pull', '-q', `${ihost}/bench:latest`], { timeoutMs: 600_000 });
      const refPull = Number(process.hrtime.bigint() - t0) / 1e9;
      const push3Root = path.join(work, 'reg3');
      fs.mkdirSync(push3Root);
      const inner2 = await startRegistry(push3Root, d.pid);
      const i2 = new URL(inner2.url).host;
      await d.dockerOk(['tag', `${ihost}/bench:latest`, `${i2}/bench:latest`]);
      settle();
      const t1 = process.hrtime.bigint();
      await d.dockerOk(['push', `${i2}/bench:latest`], { timeoutMs: 600_000 });
      const refPush = Number(process.hrtime.bigint() - t1) / 1e9;
      inner.child.kill('SIGTERM');
      inner2.child.kill('SIGTERM');
      console.log(`reference dockerd: pull ${refPull.toFixed(2)} s, push ${refPush.toFixed(2)} s`);
      console.log(
        `ratio (reference time / berth time): pull ${(refPull / berthPull).toFixed(2)}x (target >= 2.0), push ${(refPush / berthPush).toFixed(2)}x (target >= 1.5)`,
      );
    } finally {
      await d.destroy();
    }
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
