// Registry benchmark: berth registry vs Debian's docker-registry 2.8, side by
// side in one run on loopback, driven by wrk (Debian) — both servers as child
// processes with the access log off. Not a test.
//   node dist/bench/registry.js [seconds per wrk run, default 8]
// Measures: manifest GET req/s at 16 connections; blob GET MB/s (100 MB blob,
// 4 connections); monolithic (16 MiB) and chunked (20 MiB in 5 MiB chunks)
// upload MB/s at 4 connections; 1,000 tag PUTs (16 in flight; seconds);
// tags/list of 1,000 tags req/s at 16 connections; RSS idle and peak.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { machineNote, settle } from './util.js';

const secs = Number(process.argv[2] ?? 8);
const work = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'berth-bench-registry-'));
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

interface Server {
  name: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const stopper = (child: ChildProcess) => () =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });

async function ready(port: number): Promise<string> {
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/v2/`)).status === 200) return url;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answers on ${url}`);
}

async function startBerth(): Promise<Server> {
  const port = await freePort();
  const dir = path.join(work, 'berth');
  fs.mkdirSync(dir, { recursive: true });
  const cfg = path.join(dir, 'config.yml');
  fs.writeFileSync(
    cfg,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/root\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  // Started through the installed entry point (bin/berth.cjs), which sets UV_THREADPOOL_SIZE=16 for
  // `berth registry` unless the environment already sets it: the default is what is measured.
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/berth.cjs'), 'registry', 'serve', cfg], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.resume();
  child.stderr!.resume();
  const url = await ready(port);
  return { name: 'berth', url, pid: child.pid!, stop: stopper(child) };
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
}

async function startDistribution(): Promise<Server> {
  const port = await freePort();
  const dir = path.join(work, 'distribution');
  fs.mkdirSync(dir, { recursive: true });
  const cfg = path.join(dir, 'config.yml');
  fs.writeFileSync(
    cfg,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/root\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: bench\n`,
  );
  const child = spawn('/usr/bin/docker-registry', ['serve', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.resume();
  child.stderr!.resume();
  // log level error keeps distribution's per-request info lines out of its way
  const url = await ready(port);
  return { name: 'distribution', url, pid: child.pid!, stop: stopper(child) };
}

function rssMiB(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(s)![1]) / 1024;
}

/** Runs wrk while sampling the server's RSS; returns wrk's stdout and the peak RSS. */
async function wrk(
  pid: number,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ out: string; peakMiB: number }> {
  let peak = rssMiB(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, 200);
  const out = await new Promise<string>((resolve, reject) => {
    const c = spawn('wrk', args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let o = '';
    c.stdout.on('data', (d: Buffer) => {
      o += d.toString();
    });
    c.on('error', reject);
    c.on('close', () => resolve(o));
  });
  clearInterval(timer);
  return { out, peakMiB: peak };
}

const reqPerSec = (out: string) => Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
function transferMBps(out: string): number {
  const m = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  if (!m) return 0;
  const mult: Record<string, number> = { B: 1 / 1e6, KB: 1024 / 1e6, MB: 1024 ** 2 / 1e6, GB: 1024 ** 3 / 1e6 };
  return Number(m[1]) * mult[m[2]!]!;
}
const non2xx = (out: string) => Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);

async function http(method: string, url: string, body?: Buffer, headers: Record<string, string> = {}) {
  const r = await fetch(url, { method, headers, ...(body ? { body } : {}), redirect: 'manual' });
  const b = Buffer.from(await r.arrayBuffer());
  return { status: r.status, headers: r.headers, body: b };
}

async function pushBlob(base: string, name: string, blob: Buffer): Promise<void> {
  const post = await http('POST', `${base}/v2/${name}/blobs/uploads/`);
  const loc = new URL(post.headers.get('location')!, base);
  loc.searchParams.set('digest', sha(blob));
  const put = await http('PUT', loc.toString(), blob, { 'Content-Type': 'application/octet-stream' });
  if (put.status !== 201) throw new Error(`push ${put.status} ${put.body}`);
}

const UPLOAD_LUA = `
local body, digest, repo, chunk
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  local f = io.open(os.getenv("BENCH_FILE"), "rb"); body = f:read("*a"); f:close()
  digest = os.getenv("BENCH_DIGEST"); repo = os.getenv("BENCH_REPO"); chunk = tonumber(os.getenv("BENCH_CHUNK"))
  state = "post"; loc = nil; off = 0; uploads = 0; errors = 0
end
local function sep(u) if string.find(u, "?", 1, true) then return "&" else return "?" end end
function request()
  if state == "post" then
    return wrk.format("POST", "/v2/" .. repo .. "/blobs/uploads/", {["Content-Length"] = "0"}, "")
  elseif state == "patch" then
    local e = math.min(off + chunk, #body)
    return wrk.format("PATCH", loc, {["Content-Type"] = "application/octet-stream", ["Content-Range"] = off .. "-" .. (e - 1)}, string.sub(body, off + 1, e))
  elseif chunk > 0 then
    return wrk.format("PUT", loc .. sep(loc) .. "digest=" .. digest, {["Content-Length"] = "0"}, "")
  else
    return wrk.format("PUT", loc .. sep(loc) .. "digest=" .. digest, {["Content-Type"] = "application/octet-stream"}, body)
  end
end
function response(status, headers, resp)
  if state == "post" then
    local l = headers["Location"] or headers["location"]
    if status ~= 202 or not l then errors = errors + 1; return end
    loc = string.gsub(l, "^https?://[^/]+", "")
    off = 0
    if chunk > 0 then state = "patch" else state = "put" end
  elseif state == "patch" then
    if status ~= 202 then errors = errors + 1; state = "post"; return end
    local l = headers["Location"] or headers["location"]
    if l then loc = string.gsub(l, "^https?://[^/]+", "") end
    off = math.min(off + chunk, #body)
    if off >= #body then state = "put" end
  else
    if status == 201 then uploads = uploads + 1 else errors = errors + 1 end
    state = "post"
  end
end
function done(summary, latency, requests)
  local u, e = 0, 0
  for _, t in ipairs(threads) do u = u + t:get("uploads"); e = e + t:get("errors") end
  io.write(string.format("UPLOADS %d ERRORS %d SECONDS %.3f\\n", u, e, summary.duration / 1e6))
end
`;

interface Row {
  manifestRps: number;
  blobMBps: number;
  monoMBps: number;
  chunkMBps: number;
  tagPutSecs: number;
  tagsListRps: number;
  idleMiB: number;
  peakMiB: number;
  errors: string[];
}

async function runOne(s: Server, big: Buffer, monoFile: string, chunkFile: string): Promise<Row> {
  const errors: string[] = [];
  const row: Row = {
    manifestRps: 0,
    blobMBps: 0,
    monoMBps: 0,
    chunkMBps: 0,
    tagPutSecs: 0,
    tagsListRps: 0,
    idleMiB: 0,
    peakMiB: 0,
    errors,
  };
  await new Promise((r) => setTimeout(r, 1000));
  row.idleMiB = rssMiB(s.pid);
  // seed: an image and the 100 MB blob
  const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const small = randomBytes(4096);
  for (const b of [cfg, small, big]) await pushBlob(s.url, 'bench/app', b);
  for (const b of [cfg, small]) await pushBlob(s.url, 'bench/tags', b); // the tag-PUT repository needs them
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha(cfg), size: cfg.length },
      layers: [
        { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha(small), size: small.length },
      ],
    }),
  );
  const mt = 'application/vnd.docker.distribution.manifest.v2+json';
  const put = await http('PUT', `${s.url}/v2/bench/app/manifests/v1`, manifest, { 'Content-Type': mt });
  if (put.status !== 201) throw new Error(`${s.name}: manifest PUT ${put.status}`);
  let peak = 0;
  const note = (label: string, out: string) => {
    const n = non2xx(out);
    if (n) errors.push(`${label}: ${n} non-2xx`);
  };

  // Every phase starts with clean page cache writeback (sync): the previous phase's dirty pages
  // (uploads write hundreds of MB) must not be flushed inside the next phase's fsyncs or timings.
  settle();
  // manifest GET, 16 connections
  let r = await wrk(s.pid, ['-t2', '-c16', `-d${secs}s`, '-H', `Accept: ${mt}`, `${s.url}/v2/bench/app/manifests/v1`]);
  row.manifestRps = reqPerSec(r.out);
  note('manifest GET', r.out);
  peak = Math.max(peak, r.peakMiB);

  // blob GET, 100 MB, 4 connections
  settle();
  r = await wrk(s.pid, ['-t2', '-c4', `-d${secs}s`, '--timeout', '30s', `${s.url}/v2/bench/app/blobs/${sha(big)}`]);
  row.blobMBps = transferMBps(r.out);
  note('blob GET', r.out);
  peak = Math.max(peak, r.peakMiB);

  // uploads, 4 connections (one per thread: the Lua state machine is per connection)
  const lua = path.join(work, 'upload.lua');
  fs.writeFileSync(lua, UPLOAD_LUA);
  for (const [label, file, chunk] of [
    ['mono', monoFile, 0],
    ['chunked', chunkFile, 5 * 1024 * 1024],
  ] as const) {
    const data = fs.readFileSync(file);
    settle();
    r = await wrk(s.pid, ['-t4', '-c4', `-d${secs}s`, '--timeout', '60s', '-s', lua, s.url], {
      BENCH_FILE: file,
      BENCH_DIGEST: sha(data),
      BENCH_REPO: `bench/up-${label}`,
      BENCH_CHUNK: String(chunk),
    });
    const m = /UPLOADS (\d+) ERRORS (\d+) SECONDS ([\d.]+)/.exec(r.out);
    if (!m) errors.push(`${label} upload: no result`);
    else {
      const mbps = (Number(m[1]) * data.length) / 1e6 / Number(m[3]);
      if (label === 'mono') row.monoMBps = mbps;
      else row.chunkMBps = mbps;
      if (Number(m[2])) errors.push(`${label} upload: ${m[2]} errors`);
    }
    peak = Math.max(peak, r.peakMiB);
  }

  // 1,000 tag PUTs, 16 in flight
  settle();
  const t0 = process.hrtime.bigint();
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < 1000) {
        const i = next++;
        const p = await http('PUT', `${s.url}/v2/bench/tags/manifests/t${String(i).padStart(4, '0')}`, manifest, {
          'Content-Type': mt,
        });
        if (p.status !== 201) failed++;
      }
    }),
  ).catch(() => {});
  row.tagPutSecs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (failed) errors.push(`tag PUT: ${failed} failed`);
  peak = Math.max(peak, rssMiB(s.pid));

  // tags/list of 1,000 tags
  settle();
  r = await wrk(s.pid, ['-t2', '-c16', `-d${secs}s`, `${s.url}/v2/bench/tags/tags/list`]);
  row.tagsListRps = reqPerSec(r.out);
  note('tags/list', r.out);
  const list = await http('GET', `${s.url}/v2/bench/tags/tags/list`);
  const n = (JSON.parse(list.body.toString()) as { tags: string[] }).tags.length;
  if (n !== 1000) errors.push(`tags/list returned ${n} tags`);
  row.peakMiB = Math.max(peak, r.peakMiB);
  return row;
}

async function main(): Promise<void> {
  const big = randomBytes(100 * 1024 * 1024);
  const monoFile = path.join(work, 'mono.bin');
  const chunkFile = path.join(work, 'chunk.bin');
  fs.writeFileSync(monoFile, randomBytes(16 * 1024 * 1024));
  fs.writeFileSync(chunkFile, randomBytes(20 * 1024 * 1024));
  const rows: Record<string, Row> = {};
  for (const start of [startDistribution, startBerth]) {
    const s = await start();
    try {
      rows[s.name] = await runOne(s, big, monoFile, chunkFile);
    } finally {
      await s.stop();
    }
    spawnSync('sync');
  }
  const d = rows.distribution!;
  const b = rows.berth!;
  const fmt = (x: number, digits = 0) => x.toFixed(digits);
  const lines = [
    `Registry benchmark (${secs}s per wrk run; berth via bin/berth.cjs, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 'default (16)'}; ${machineNote()})`,
    '',
    '| measure | docker-registry 2.8 | berth | berth / distribution | target |',
    '|---|---:|---:|---:|---:|',
    `| manifest GET req/s (16 conns) | ${fmt(d.manifestRps)} | ${fmt(b.manifestRps)} | ${(b.manifestRps / d.manifestRps).toFixed(2)}× | ≥ 3.0× |`,
    `| blob GET MB/s (100 MB, 4 conns) | ${fmt(d.blobMBps)} | ${fmt(b.blobMBps)} | ${(b.blobMBps / d.blobMBps).toFixed(2)}× | ≥ 1.0× |`,
    `| monolithic upload MB/s (16 MiB, 4 conns) | ${fmt(d.monoMBps)} | ${fmt(b.monoMBps)} | ${(b.monoMBps / d.monoMBps).toFixed(2)}× | ≥ 1.0× |`,
    `| chunked upload MB/s (20 MiB in 5 MiB chunks, 4 conns) | ${fmt(d.chunkMBps)} | ${fmt(b.chunkMBps)} | ${(b.chunkMBps / d.chunkMBps).toFixed(2)}× | ≥ 1.0× |`,
    `| 1,000 tag PUTs, s (16 in flight; lower is better) | ${fmt(d.tagPutSecs, 2)} | ${fmt(b.tagPutSecs, 2)} | ${(d.tagPutSecs / b.tagPutSecs).toFixed(2)}× | ≥ 1.0× |`,
    `| tags/list of 1,000 tags req/s (16 conns) | ${fmt(d.tagsListRps)} | ${fmt(b.tagsListRps)} | ${(b.tagsListRps / d.tagsListRps).toFixed(2)}× | ≥ 1.0× |`,
    `| RSS idle, MiB | ${fmt(d.idleMiB, 1)} | ${fmt(b.idleMiB, 1)} | | |`,
    `| RSS peak under load, MiB | ${fmt(d.peakMiB, 1)} | ${fmt(b.peakMiB, 1)} | | |`,
  ];
  for (const [n, r] of Object.entries(rows)) if (r.errors.length) lines.push('', `${n} errors: ${r.errors.join('; ')}`);
  console.log(lines.join('\n'));
  fs.rmSync(work, { recursive: true, force: true });
}

await main();
