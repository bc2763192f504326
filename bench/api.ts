// Issue-4 API benchmarks (not tests), berthd and the reference dockerd side by side:
//  - GET /images/json latency with 500 images (target: berth <= 1.0x the reference)
//  - idle resident memory: berthd vs dockerd + its containerd (target: <=)
//   node dist/bench/api.js [images=500] [requests=60]
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { TarWriter } from '../src/archive/index.js';
import { sha256 } from '../src/oci/index.js';
import { Berthd, CLI20 } from '../test/integration/cli-kit.js';
import { ReferenceDockerd } from '../test/kit/reference-dockerd.js';
import { machineNote, median } from './util.js';

const count = Number(process.argv[2] ?? 500);
const requests = Number(process.argv[3] ?? 60);

/** A docker save tar with `count` images sharing one small layer (distinct configs → distinct IDs). */
function manyImagesTar(file: string): void {
  const layer = new TarWriter();
  layer.file('hello.txt', Buffer.from('hello\n'));
  const layerTar = layer.finish();
  const diffId = sha256(layerTar);
  const out = new TarWriter();
  out.file('l/layer.tar', layerTar);
  const manifest: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const cfg = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        created: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
        config: { Cmd: ['/hello.txt'], Labels: { n: String(i) } },
        rootfs: { type: 'layers', diff_ids: [diffId] },
        history: [{ created_by: `bench ${i}` }],
      }),
    );
    const name = `${sha256(cfg).slice(7)}.json`;
    out.file(name, cfg);
    manifest.push({ Config: name, RepoTags: [`bench/img${i % 50}:t${i}`], Layers: ['l/layer.tar'] });
  }
  out.file('manifest.json', Buffer.from(JSON.stringify(manifest)));
  fs.writeFileSync(file, out.finish());
}

function get(socket: string, p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const req = http.request({ socketPath: socket, path: p, method: 'GET' }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(Number(process.hrtime.bigint() - t) / 1e6));
    });
    req.on('error', reject);
    req.end();
  });
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

async function latency(socket: string, apiPath: string): Promise<number[]> {
  for (let i = 0; i < 5; i++) await get(socket, apiPath); // warm up
  const xs: number[] = [];
  for (let i = 0; i < requests; i++) xs.push(await get(socket, apiPath));
  return xs;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-api-'));
const tar = path.join(work, 'many.tar');
manyImagesTar(tar);
const ref = await ReferenceDockerd.start({ baseDir: work });
const berth = await Berthd.start({ dir: path.join(work, 'berthd') });
try {
  await ref.dockerOk(['load', '-q', '-i', tar], { timeoutMs: 300_000 });
  const l = await berth.docker(CLI20, ['load', '-q', '-i', tar], { timeoutMs: 300_000 });
  if (l.code !== 0) throw new Error(l.stderr);
  const apiPath = '/v1.41/images/json';
  const refLat = await latency(ref.socket, apiPath);
  const berthLat = await latency(berth.socket, apiPath);
  await new Promise((r) => setTimeout(r, 3000)); // idle
  const refPids = [ref.pid, ...childrenOf(ref.pid)];
  const refRss = refPids.reduce((a, p) => a + rssMiB(p), 0);
  const berthRss = rssMiB(berth.pid);
  console.log(machineNote());
  console.log(`GET /images/json with ${count} images, median of ${requests}:`);
  console.log(`  reference dockerd  ${median(refLat).toFixed(1)} ms`);
  console.log(`  berthd             ${median(berthLat).toFixed(1)} ms`);
  console.log(`  latency ratio berth/reference = ${(median(berthLat) / median(refLat)).toFixed(2)} (target <= 1.00)`);
  console.log('idle resident memory after loading them:');
  console.log(`  dockerd + containerd (pids ${refPids.join(',')})  ${refRss.toFixed(0)} MiB`);
  console.log(`  berthd                                ${berthRss.toFixed(0)} MiB`);
  console.log(`  ratio berth/reference = ${(berthRss / refRss).toFixed(2)} (target <= 1.00)`);
} finally {
  await berth.destroy();
  await ref.destroy();
  fs.rmSync(work, { recursive: true, force: true });
}
