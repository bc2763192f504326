// Containers, berthd side by side with the reference dockerd 20.10 (same
// image imported into both, same CLI 28 client):
//   - `docker run --rm img true` median latency (and p90)
//   - 10 concurrent `docker run --rm` wall time (median of 5 rounds, interleaved)
//   - GET /containers/json?all=1 with 200 containers
//   - `docker logs` of 100 000 lines
//   - resident memory of one shim per running container (berth-shim vs
//     containerd-shim-runc-v2) and of the daemon itself
// Run as root: node dist/bench/containers.js [--runs N]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { IMPORT_CHANGES, makeTestRootfsTar } from '../test/integration/cli-containers-kit.js';
import { Berthd, CLI28, httpUnix } from '../test/integration/cli-kit.js';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../test/kit/reference-dockerd.js';
import { machineNote, median, timeAsync } from './util.js';

const IMG = 'bbox:1';
const RUNS = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 15;
/** `--only-run`: just the `run --rm` latency (quick iterations while profiling). */
const ONLY_RUN = process.argv.includes('--only-run');
const CONC_ROUNDS = 5;

interface Engine {
  name: string;
  host: string;
  socket: string;
  pid: () => number;
  shimName: string;
}

function docker(e: Engine, args: string[], cfg: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(CLI28, ['-H', e.host, ...args], { env: { ...process.env, DOCKER_CONFIG: cfg } });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    c.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    c.on('error', reject);
    c.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

async function ok(e: Engine, args: string[], cfg: string): Promise<string> {
  const r = await docker(e, args, cfg);
  if (r.code !== 0) throw new Error(`${e.name}: docker ${args.join(' ')}: ${r.err}`);
  return r.out;
}

function rssKb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Direct children (and their descendants) of `root` whose comm starts with `name`. */
function findProcs(name: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim().startsWith(name)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * `run --rm` latency, the two engines interleaved run by run (in alternating
 * order), so that a change in the machine's state (other work, the file
 * system after deletions) falls on both alike.
 */
async function runLatency(engines: Engine[], cfg: string): Promise<Record<string, Record<string, string>>> {
  const lat = new Map<Engine, number[]>(engines.map((e) => [e, []]));
  const once = (e: Engine) => ok(e, ['run', '--rm', '--network', 'none', IMG, 'true'], cfg);
  for (const e of engines) await once(e); // warm-up
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 ? [...engines].reverse() : engines;
    for (const e of order) lat.get(e)!.push(await timeAsync(() => once(e)));
  }
  // 10 at once, CONC_ROUNDS rounds per engine, interleaved: the median round
  const conc = new Map<Engine, number[]>(engines.map((e) => [e, []]));
  if (!ONLY_RUN)
    for (let i = 0; i < CONC_ROUNDS; i++) {
      const order = i % 2 ? [...engines].reverse() : engines;
      for (const e of order)
        conc.get(e)!.push(await timeAsync(() => Promise.all(Array.from({ length: 10 }, () => once(e)))));
    }
  const out: Record<string, Record<string, string>> = {};
  for (const e of engines) {
    const l = lat.get(e)!.sort((a, b) => a - b);
    out[e.name] = {
      'run --rm true, median': `${(median(l) * 1000).toFixed(0)} ms`,
      'run --rm true, p90': `${(l[Math.floor(l.length * 0.9)]! * 1000).toFixed(0)} ms`,
      'run --rm true, min-max': `${(l[0]! * 1000).toFixed(0)}-${(l.at(-1)! * 1000).toFixed(0)} ms`,
    };
    const c = conc.get(e)!.sort((a, b) => a - b);
    if (c.length) {
      out[e.name]![`10 concurrent run --rm, wall (median of ${c.length})`] = `${(median(c) * 1000).toFixed(0)} ms`;
      out[e.name]!['10 concurrent, min-max'] = `${(c[0]! * 1000).toFixed(0)}-${(c.at(-1)! * 1000).toFixed(0)} ms`;
    }
  }
  return out;
}

async function benchEngine(e: Engine, cfg: string): Promise<Record<string, string>> {
  const r: Record<string, string> = {};

  // 200 containers: created (not started) so the list covers every state field
  for (let i = 0; i < 200; i += 20)
    await Promise.all(
      Array.from({ length: 20 }, (_, j) =>
        ok(e, ['create', '--network', 'none', '--name', `c${i + j}`, IMG, 'true'], cfg),
      ),
    );
  const ls: number[] = [];
  for (let i = 0; i < 20; i++) {
    ls.push(
      await timeAsync(async () => {
        const res = await httpUnix(e.socket, 'GET', '/v1.41/containers/json?all=1');
        if (res.status !== 200 || (JSON.parse(res.body) as unknown[]).length < 200) throw new Error('list failed');
      }),
    );
  }
  r['GET /containers/json?all=1 (200)'] = `${(median(ls) * 1000).toFixed(1)} ms`;
  await ok(e, ['container', 'prune', '-f'], cfg);

  // logs of 100 000 lines
  await ok(e, ['run', '--name', 'logger', '--network', 'none', IMG, 'seq', '1', '100000'], cfg);
  const logs: number[] = [];
  for (let i = 0; i < 5; i++) {
    logs.push(
      await timeAsync(async () => {
        const o = await ok(e, ['logs', 'logger'], cfg);
        if (!o.endsWith('100000\n')) throw new Error('logs incomplete');
      }),
    );
  }
  r['docker logs, 100k lines'] = `${(median(logs) * 1000).toFixed(0)} ms`;
  await ok(e, ['rm', 'logger'], cfg);

  // resident memory: 5 running containers
  const before = new Set(findProcs(e.shimName));
  for (let i = 0; i < 5; i++)
    await ok(e, ['run', '-d', '--network', 'none', '--name', `s${i}`, IMG, 'sleep', '600'], cfg);
  const shims = findProcs(e.shimName).filter((p) => !before.has(p));
  const rss = shims.map(rssKb).filter((x) => x > 0);
  r['shim RSS per container'] = rss.length
    ? `${(rss.reduce((a, b) => a + b, 0) / rss.length / 1024).toFixed(1)} MiB`
    : 'n/a';
  r['daemon RSS (5 running)'] = `${(rssKb(e.pid()) / 1024).toFixed(0)} MiB`;
  await ok(e, ['rm', '-f', 's0', 's1', 's2', 's3', 's4'], cfg);
  return r;
}

async function main(): Promise<void> {
  const why = referenceDockerdUnavailable();
  if (why) throw new Error(`bench/containers: ${why}`);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'bench-ctr-'));
  const cfg = path.join(work, 'cli');
  const tar = await makeTestRootfsTar(work);
  const ref = await ReferenceDockerd.start();
  const b = await Berthd.start();
  try {
    const berth: Engine = { name: 'berth', host: b.host, socket: b.socket, pid: () => b.pid, shimName: 'berth-shim' };
    const dockerd: Engine = {
      name: 'dockerd 20.10',
      host: ref.host,
      socket: ref.host.replace(/^unix:\/\//, ''),
      pid: () => ref.pid,
      shimName: 'containerd-shim',
    };
    for (const e of [berth, dockerd]) await ok(e, ['import', ...IMPORT_CHANGES, tar, IMG], cfg);
    const results = await runLatency([berth, dockerd], cfg);
    if (!ONLY_RUN) for (const e of [dockerd, berth]) Object.assign(results[e.name]!, await benchEngine(e, cfg));
    console.log(`\ncontainers benchmark (${machineNote()}), ${RUNS} sequential runs of each engine, interleaved\n`);
    const keys = Object.keys(results.berth!);
    const w = Math.max(...keys.map((k) => k.length));
    console.log(`${'metric'.padEnd(w)} | ${'berth'.padStart(10)} | ${'dockerd 20.10'.padStart(13)} | ratio`);
    console.log(`${'-'.repeat(w)}-|-${'-'.repeat(10)}-|-${'-'.repeat(13)}-|------`);
    for (const k of keys) {
      const a = results.berth![k]!;
      const b = results['dockerd 20.10']![k]!;
      const ratio =
        /^[\d.]+ ms$/.test(a) && /^[\d.]+ ms$/.test(b) ? `${(parseFloat(a) / parseFloat(b)).toFixed(2)}×` : '';
      console.log(`${k.padEnd(w)} | ${a.padStart(10)} | ${b.padStart(13)} | ${ratio}`);
    }
  } finally {
    await Promise.allSettled([b.destroy(), ref.destroy()]);
    await fsp.rm(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
