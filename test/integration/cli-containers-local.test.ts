// The `local` log driver through the docker CLI against berthd: `docker logs`
// prints exactly what it prints for a json-file container with the same
// output (plain, --tail, -t's shape, stream selection), rotation by max-size
// with rotated files gzipped by berthd; and, when the reference dockerd 20.10
// is available, berth's local-format file read by the reference's own reader.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../kit/reference-dockerd.js';
import { IMPORT_CHANGES, makeTestRootfsTar, until } from './cli-containers-kit.js';
import { Berthd, CLI20, CLI28, cliUnavailable, run } from './cli-kit.js';

const skip = cliUnavailable() ?? (fs.existsSync('/usr/sbin/runc') ? undefined : 'runc is missing');
if (skip) console.log(`# skipping cli-containers-local: ${skip}`);
const refSkip = skip ?? referenceDockerdUnavailable();

const IMG = 'bbox:1';
// sleeps: stdout and stderr are separate pipes; their order in the log (and so --tail) is fixed only by time
const SCRIPT =
  'echo a; printf "tab\\there <&> \\"q\\" \\\\ é\\n"; sleep 0.2; echo b >&2; sleep 0.2; printf "no newline"';

describe('docker CLI against berthd: local log driver', { skip, timeout: 200_000 }, () => {
  let b: Berthd;
  let work: string;
  const dk = (args: string[]) => b.docker(CLI28, args, { timeoutMs: 40_000 });
  const ok = async (args: string[]) => {
    const r = await dk(args);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.toString();
  };
  const localDir = async (name: string) =>
    path.join(b.dataRoot, 'containers', (await ok(['inspect', '-f', '{{.Id}}', name])).trim(), 'local-logs');

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'cli-local-'));
    b = await Berthd.start();
    const tar = await makeTestRootfsTar(work);
    await ok(['import', ...IMPORT_CHANGES, tar, IMG]);
  });

  after(async () => {
    await b?.docker(CLI28, ['rm', '-f', 'loc', 'js', 'rot', 'big'], { timeoutMs: 40_000 }).catch(() => {});
    await b?.destroy();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  test('docker info lists local; logs of a local container = logs of a json-file one', async () => {
    const info = JSON.parse(await ok(['info', '--format', '{{json .Plugins.Log}}'])) as string[];
    assert.ok(info.includes('local'), String(info));
    const lo = await dk([
      'run',
      '--name',
      'loc',
      '--log-driver',
      'local',
      '--network',
      'none',
      IMG,
      'sh',
      '-c',
      SCRIPT,
    ]);
    assert.equal(lo.code, 0, lo.stderr);
    const jo = await dk(['run', '--name', 'js', '--network', 'none', IMG, 'sh', '-c', SCRIPT]);
    assert.equal(jo.code, 0, jo.stderr);
    assert.equal(await ok(['inspect', '-f', '{{.HostConfig.LogConfig.Type}}', 'loc']), 'local\n');
    assert.ok(fs.existsSync(path.join(await localDir('loc'), 'container.log')));
    for (const args of [['logs'], ['logs', '--tail', '1'], ['logs', '--tail', '2']]) {
      const [l, j] = await Promise.all([dk([...args, 'loc']), dk([...args, 'js'])]);
      assert.equal(l.code, 0, l.stderr);
      assert.equal(l.stdout.toString(), j.stdout.toString(), `${args.join(' ')} stdout`);
      assert.equal(l.stderr.toString(), j.stderr.toString(), `${args.join(' ')} stderr`);
    }
    const all = await dk(['logs', 'loc']);
    assert.equal(all.stdout.toString(), 'a\ntab\there <&> "q" \\ é\nno newline');
    assert.equal(all.stderr.toString(), 'b\n');
    assert.equal((await dk(['logs', '--tail', '1', 'loc'])).stdout.toString(), 'no newline');
    const t = await dk(['logs', '-t', 'loc']);
    const lines = t.stdout.toString().split('\n');
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z a$/);
    assert.match(t.stderr.toString(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z b\n$/);
    // since/until with the timestamps -t printed
    const ts = lines[0]!.split(' ')[0]!;
    assert.equal((await dk(['logs', '--until', ts, 'loc'])).stdout.toString(), 'a\n');
  });

  test('rotation by max-size: rotated files gzipped by berthd, logs reads across them; follow', async () => {
    const n = 2000;
    const r = await dk([
      'run',
      '--name',
      'rot',
      '--log-driver',
      'local',
      '--log-opt',
      'max-size=10k',
      '--log-opt',
      'max-file=3',
      '--network',
      'none',
      IMG,
      'sh',
      '-c',
      `i=0; while [ $i -lt ${n} ]; do echo "line-$i"; i=$((i+1)); done`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const dir = await localDir('rot');
    await until(async () => {
      const f = fs.readdirSync(dir).sort();
      return f.join(',') === 'container.log,container.log.1.gz,container.log.2.gz';
    });
    const one = zlib.gunzipSync(fs.readFileSync(path.join(dir, 'container.log.1.gz')));
    assert.ok(one.length >= 10_000 && one.length < 10_100, String(one.length));
    const out = (await ok(['logs', 'rot'])).split('\n').filter(Boolean);
    assert.equal(out[out.length - 1], `line-${n - 1}`);
    const first = Number(/line-(\d+)/.exec(out[0]!)![1]);
    assert.ok(first > 0, 'oldest lines rotated away');
    assert.deepEqual(
      out,
      Array.from({ length: n - first }, (_, i) => `line-${first + i}`),
    );
    assert.equal(await ok(['logs', '--tail', '2', 'rot']), `line-${n - 2}\nline-${n - 1}\n`);
    // follow on a running container
    await ok([
      'run',
      '-d',
      '--name',
      'big',
      '--log-driver',
      'local',
      '--log-opt',
      'max-size=2k',
      IMG,
      'sh',
      '-c',
      'sleep 1; i=0; while [ $i -lt 100 ]; do echo "f-$i"; i=$((i+1)); [ $((i % 10)) = 0 ] && sleep 0.1; done',
    ]);
    const f = await dk(['logs', '-f', 'big']);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.stdout.toString(), Array.from({ length: 100 }, (_, i) => `f-${i}\n`).join(''));
    assert.ok(fs.readdirSync(await localDir('big')).some((x) => x.endsWith('.gz')));
  });

  test('logs --details: labels/env/tag attrs as for json-file', async () => {
    const flags = ['--label', 'team=x', '-e', 'K=v', '--log-opt', 'labels=team', '--log-opt', 'env=K'];
    const tag = ['--log-opt', 'tag={{.Name}}'];
    for (const [name, drv] of [
      ['dloc', ['--log-driver', 'local']],
      ['djs', []],
    ] as const) {
      await ok(['run', '--name', name, ...drv, ...flags, ...tag, '--network', 'none', IMG, 'echo', 'hi']);
    }
    const [l, j] = await Promise.all([dk(['logs', '--details', 'dloc']), dk(['logs', '--details', 'djs'])]);
    assert.equal(l.stdout.toString().replace('dloc', 'NAME'), j.stdout.toString().replace('djs', 'NAME'));
    assert.equal(l.stdout.toString(), 'K=v,tag=dloc,team=x hi\n');
    await ok(['rm', 'dloc', 'djs']);
  });

  test('bad local log opts are refused with moby messages', async () => {
    const r = await dk(['run', '--rm', '--log-driver', 'local', '--log-opt', 'max-file=1', IMG, 'true']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr.toString(), /compression cannot be enabled when max file count is 1/);
    const u = await dk(['run', '--rm', '--log-driver', 'local', '--log-opt', 'bogus=1', IMG, 'true']);
    assert.match(u.stderr.toString(), /unknown log opt 'bogus' for log driver local/);
  });
});

describe("berth's local-driver file read by the reference dockerd 20.10", { skip: refSkip, timeout: 200_000 }, () => {
  let ref: ReferenceDockerd;
  let b: Berthd;
  let work: string;
  const onRef = (args: string[]) =>
    run(CLI20, ['-H', ref.host, ...args], { env: { DOCKER_CONFIG: path.join(work, 'ref-cli') }, timeoutMs: 60_000 });
  const onBerth = (args: string[]) => b.docker(CLI28, args, { timeoutMs: 60_000 });

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'cli-local-ref-'));
    const tar = await makeTestRootfsTar(work);
    [ref, b] = await Promise.all([ReferenceDockerd.start(), Berthd.start()]);
    for (const f of [onRef, onBerth]) {
      const r = await f(['import', ...IMPORT_CHANGES, tar, IMG]);
      assert.equal(r.code, 0, r.stderr);
    }
  });

  after(async () => {
    await Promise.allSettled([b?.destroy(), ref?.destroy()]);
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  test('same docker logs output (plain, --tail, -t) from the copied container.log', async () => {
    const bo = await onBerth([
      'run',
      '--name',
      'src',
      '--log-driver',
      'local',
      '--network',
      'none',
      IMG,
      'sh',
      '-c',
      SCRIPT,
    ]);
    assert.equal(bo.code, 0, bo.stderr);
    const ro = await onRef(['run', '--name', 'dst', '--log-driver', 'local', '--network', 'none', IMG, 'true']);
    assert.equal(ro.code, 0, ro.stderr);
    const id = async (f: typeof onRef, n: string) =>
      (await f(['inspect', '-f', '{{.Id}}', n])).stdout.toString().trim();
    const src = path.join(b.dataRoot, 'containers', await id(onBerth, 'src'), 'local-logs', 'container.log');
    const dst = path.join(ref.dataRoot, 'containers', await id(onRef, 'dst'), 'local-logs', 'container.log');
    assert.ok(fs.existsSync(dst), 'the reference wrote its local-logs/container.log');
    await fsp.copyFile(src, dst);
    for (const args of [['logs'], ['logs', '--tail', '2'], ['logs', '-t']]) {
      const [r, o] = await Promise.all([onRef([...args, 'dst']), onBerth([...args, 'src'])]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(o.stdout.toString(), r.stdout.toString(), `${args.join(' ')} stdout`);
      assert.equal(o.stderr.toString(), r.stderr.toString(), `${args.join(' ')} stderr`);
    }
  });

  test('rotated files gzipped by berthd are read by the reference too', async () => {
    const opts = ['--log-driver', 'local', '--log-opt', 'max-size=1k', '--log-opt', 'max-file=3'];
    const loop = 'i=0; while [ $i -lt 120 ]; do echo "r-$i"; i=$((i+1)); done';
    const bo = await onBerth(['run', '--name', 'rsrc', ...opts, '--network', 'none', IMG, 'sh', '-c', loop]);
    assert.equal(bo.code, 0, bo.stderr);
    const ro = await onRef(['run', '--name', 'rdst', ...opts, '--network', 'none', IMG, 'true']);
    assert.equal(ro.code, 0, ro.stderr);
    const id = async (f: typeof onRef, n: string) =>
      (await f(['inspect', '-f', '{{.Id}}', n])).stdout.toString().trim();
    const src = path.join(b.dataRoot, 'containers', await id(onBerth, 'rsrc'), 'local-logs');
    const dst = path.join(ref.dataRoot, 'containers', await id(onRef, 'rdst'), 'local-logs');
    const want = ['container.log', 'container.log.1.gz', 'container.log.2.gz'];
    await until(() => fs.readdirSync(src).sort().join() === want.join());
    for (const f of fs.readdirSync(dst)) await fsp.rm(path.join(dst, f));
    for (const f of want) await fsp.copyFile(path.join(src, f), path.join(dst, f));
    for (const args of [['logs'], ['logs', '--tail', '30'], ['logs', '-t']]) {
      const [r, o] = await Promise.all([onRef([...args, 'rdst']), onBerth([...args, 'rsrc'])]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(o.stdout.toString(), r.stdout.toString(), `${args.join(' ')} stdout`);
    }
    const out = (await onBerth(['logs', 'rsrc'])).stdout.toString();
    assert.ok(out.endsWith('r-119\n') && !out.startsWith('r-0\n'), out.slice(0, 40));
  });
});
