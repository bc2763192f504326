// End to end with the real docker CLI 28 against berthd, and the same
// sequences against the reference dockerd 20.10 (CLI 20) where it can run:
// `docker cp -a` (copyUIDGID), noOverwriteDirNonDir on PUT archive,
// `docker ps --filter ancestor=` (descendant images) and `--volumes-from`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../kit/reference-dockerd.js';
import { IMPORT_CHANGES, makeTestRootfsTar } from './cli-containers-kit.js';
import { Berthd, CLI20, CLI28, cliUnavailable, type RunResult, run } from './cli-kit.js';

const skip = cliUnavailable();
if (skip) console.log(`# skipping cli-containers-extra: ${skip}`);
const refSkip = skip ?? referenceDockerdUnavailable();
if (!skip && refSkip) console.log(`# cli-containers-extra: no differential checks: ${refSkip}`);

const IMG = 'bbox:1';
type Docker = (args: string[], input?: Buffer | string) => Promise<RunResult & { raw: Buffer }>;

/** `uid:gid` of a host user as getent sees it, or undefined. */
function hostUser(name: string): string | undefined {
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const f = r.stdout.trim().split(':');
  return `${f[2]}:${f[3]}`;
}

/** "uid:gid name" per entry of a tar (numeric owners), sorted. */
function owners(tar: Buffer): string[] {
  const r = spawnSync('tar', ['-tv', '--numeric-owner', '-f', '-'], { input: tar, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return `${f[1]!.replace('/', ':')} ${f[f.length - 1]}`;
    })
    .sort();
}

/** Inspect Mounts without what differs between engines (volume IDs, data-roots), by destination. */
function mounts(json: string): string[] {
  const list = JSON.parse(json) as Array<Record<string, unknown>>;
  return list
    .map((m) => {
      const o: Record<string, unknown> = { ...m };
      if (typeof o.Name === 'string' && /^[0-9a-f]{64}$/.test(o.Name)) o.Name = '<anon>';
      if (m.Type === 'volume') o.Source = String(o.Source).replace(/^.*\/volumes\/[^/]+\/_data$/, '<volume>/_data');
      return JSON.stringify(o, Object.keys(o).sort());
    })
    .sort();
}

interface Engine {
  name: string;
  docker: Docker;
  work: string;
}

describe('containers (extra): cp -a, noOverwriteDirNonDir, ps ancestor, --volumes-from', {
  skip,
  timeout: 300_000,
}, () => {
  let b: Berthd;
  let ref: ReferenceDockerd | undefined;
  let work: string;
  const engines: Engine[] = [];

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'cli-ctr-extra-'));
    const tar = await makeTestRootfsTar(work);
    [b, ref] = await Promise.all([Berthd.start(), refSkip ? undefined : ReferenceDockerd.start()]);
    engines.push({
      name: 'berth',
      docker: (args, input) => b.docker(CLI28, args, { ...(input !== undefined ? { input } : {}), timeoutMs: 60_000 }),
      work: path.join(work, 'berth'),
    });
    if (ref) {
      const r = ref;
      engines.push({
        name: 'ref',
        docker: (args, input) =>
          run(CLI20, ['-H', r.host, ...args], {
            env: { DOCKER_CONFIG: path.join(work, 'ref-cli') },
            ...(input !== undefined ? { input } : {}),
            timeoutMs: 60_000,
          }),
        work: path.join(work, 'ref'),
      });
    }
    for (const e of engines) {
      await fsp.mkdir(e.work);
      const r = await e.docker(['import', ...IMPORT_CHANGES, tar, IMG]);
      assert.equal(r.code, 0, r.stderr);
    }
  });

  after(async () => {
    await Promise.allSettled([b?.destroy(), ref?.destroy()]);
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  /** Runs `scenario` on berth and (when it can run) on the reference; returns [berth, ref?]. */
  async function onEach<T>(scenario: (e: Engine) => Promise<T>): Promise<[T, T | undefined]> {
    const out = await Promise.all(engines.map(scenario));
    return [out[0]!, out[1]];
  }

  const ok = async (e: Engine, args: string[]) => {
    const r = await e.docker(args);
    assert.equal(r.code, 0, `${e.name}: docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };

  test('docker cp -a: owner from the Config.User looked up as dockerd 20.10 does; without it the tar owner', async () => {
    const daemonUser = hostUser('daemon');
    const user1OnHost = hostUser('user1');
    const [got, want] = await onEach(async (e) => {
      const src = path.join(e.work, 'cp-a');
      await fsp.mkdir(path.join(src, 'd'), { recursive: true });
      fs.writeFileSync(path.join(src, 'f'), 'f\n');
      fs.writeFileSync(path.join(src, 'd', 'in'), 'in\n');
      fs.chownSync(path.join(src, 'f'), 1234, 5678);
      fs.chownSync(path.join(src, 'd'), 1234, 5678);
      fs.chownSync(path.join(src, 'd', 'in'), 4321, 8765);
      const o: Record<string, unknown> = {};
      await ok(e, ['create', '--name', 'cpa-root', IMG, 'true']);
      await ok(e, ['cp', '-a', path.join(src, 'f'), 'cpa-root:/tmp/fa']);
      await ok(e, ['cp', path.join(src, 'f'), 'cpa-root:/tmp/fn']);
      await ok(e, ['cp', '-a', path.join(src, 'd'), 'cpa-root:/tmp/da']);
      o.root = owners((await e.docker(['cp', 'cpa-root:/tmp', '-'])).raw);
      if (daemonUser) {
        await ok(e, ['create', '--name', 'cpa-daemon', '-u', 'daemon', IMG, 'true']);
        await ok(e, ['cp', '-a', path.join(src, 'f'), 'cpa-daemon:/tmp/fa']);
        await ok(e, ['cp', path.join(src, 'f'), 'cpa-daemon:/tmp/fn']);
        await ok(e, ['cp', '-a', path.join(src, 'd'), 'cpa-daemon:/tmp/da']);
        o.daemon = owners((await e.docker(['cp', 'cpa-daemon:/tmp', '-'])).raw);
      }
      // a user only the container's /etc/passwd knows: dockerd 20.10 looks on the host and fails
      await ok(e, ['create', '--name', 'cpa-user1', '-u', 'user1', IMG, 'true']);
      const r = await e.docker(['cp', '-a', path.join(src, 'f'), 'cpa-user1:/tmp/fa']);
      o.user1 = { code: r.code, stderr: r.stderr.trim() };
      o.user1After = owners((await e.docker(['cp', 'cpa-user1:/tmp', '-'])).raw);
      return o;
    });
    assert.deepEqual(got.root, [
      '0:0 tmp/',
      '1234:5678 tmp/da/',
      '1234:5678 tmp/fa',
      '1234:5678 tmp/fn',
      '4321:8765 tmp/da/in',
    ]);
    if (daemonUser)
      assert.deepEqual(
        got.daemon,
        [
          '0:0 tmp/',
          `${daemonUser} tmp/da/`,
          `${daemonUser} tmp/da/in`,
          `${daemonUser} tmp/fa`,
          '1234:5678 tmp/fn',
        ].sort(),
      );
    if (!user1OnHost) {
      assert.deepEqual(got.user1, {
        code: 1,
        stderr: 'Error response from daemon: getent unable to find entry "user1" in passwd database',
      });
      assert.deepEqual(got.user1After, ['0:0 tmp/'], 'nothing was extracted');
    }
    if (want) assert.deepEqual(got, want, 'berth and the reference dockerd');
  });

  test('noOverwriteDirNonDir: a directory and a non-directory do not replace each other; nothing changes', async () => {
    const [got, want] = await onEach(async (e) => {
      const src = path.join(e.work, 'nodir');
      await fsp.mkdir(path.join(src, 'asdir', 'x'), { recursive: true });
      await fsp.mkdir(path.join(src, 'asfile'), { recursive: true });
      fs.writeFileSync(path.join(src, 'asfile', 'x'), 'new file\n');
      fs.writeFileSync(path.join(src, 'asdir', 'x', 'inner'), 'inner\n');
      await ok(e, ['create', '--name', 'nodir', IMG, 'true']);
      // /tmp/x in the container: first a directory holding a file
      await ok(e, ['cp', path.join(src, 'asdir', 'x'), 'nodir:/tmp/']);
      const o: Record<string, unknown> = {};
      const r1 = await e.docker(['cp', path.join(src, 'asfile', 'x'), 'nodir:/tmp/']);
      o.fileOverDir = { code: r1.code, stderr: r1.stderr.trim() };
      o.afterFileOverDir = owners((await e.docker(['cp', 'nodir:/tmp', '-'])).raw);
      // /tmp/y: a file; then a directory named y
      await ok(e, ['cp', path.join(src, 'asfile', 'x'), 'nodir:/tmp/y']);
      await fsp.mkdir(path.join(src, 'y'));
      fs.writeFileSync(path.join(src, 'y', 'z'), 'z\n');
      const r2 = await e.docker(['cp', path.join(src, 'y'), 'nodir:/tmp/']);
      o.dirOverFile = { code: r2.code, stderr: r2.stderr.trim() };
      o.y = (await e.docker(['cp', 'nodir:/tmp/y', '-'])).raw.subarray(512, 512 + 9).toString();
      o.afterDirOverFile = owners((await e.docker(['cp', 'nodir:/tmp', '-'])).raw);
      return o;
    });
    assert.deepEqual(got.fileOverDir, {
      code: 1,
      stderr:
        'Error response from daemon: Error processing tar file(exit status 1): ' +
        'cannot overwrite directory "/tmp/x" with non-directory "/tmp"',
    });
    assert.deepEqual(got.afterFileOverDir, ['0:0 tmp/', '0:0 tmp/x/', '0:0 tmp/x/inner']);
    assert.deepEqual(got.dirOverFile, {
      code: 1,
      stderr:
        'Error response from daemon: Error processing tar file(exit status 1): ' +
        'cannot overwrite non-directory "/tmp/y" with directory "/tmp"',
    });
    assert.equal(got.y, 'new file\n', '/tmp/y is still the file');
    assert.deepEqual(got.afterDirOverFile, ['0:0 tmp/', '0:0 tmp/x/', '0:0 tmp/x/inner', '0:0 tmp/y']);
    // without the flag (the raw API) the directory replaces the file, as dockerd does
    const tarDir = path.join(work, 'raw-y');
    await fsp.mkdir(path.join(tarDir, 'y'), { recursive: true });
    const t = spawnSync('tar', ['-C', tarDir, '-cf', '-', 'y']);
    const put = (flag: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(
          {
            socketPath: b.socket,
            method: 'PUT',
            path: `/containers/nodir/archive?path=/tmp&noOverwriteDirNonDir=${flag}`,
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(t.stdout);
      });
    assert.equal(await put('1'), 500);
    assert.equal(await put('0'), 200);
    const after = owners((await b.docker(CLI28, ['cp', 'nodir:/tmp', '-'])).raw);
    assert.ok(after.includes('0:0 tmp/y/'), after.join('\n'));
    if (want) assert.deepEqual(got, want, 'berth and the reference dockerd');
  });

  test('ps --filter ancestor: the image and its descendants, by name:tag, ID, short ID; unknown → none', async () => {
    const [got, want] = await onEach(async (e) => {
      await ok(e, ['create', '--name', 'anc-base', IMG, 'true']);
      await ok(e, ['commit', 'anc-base', 'anc-child:1']);
      await ok(e, ['create', '--name', 'anc-child', 'anc-child:1', 'true']);
      await ok(e, ['commit', 'anc-child', 'anc-grandchild:1']);
      await ok(e, ['create', '--name', 'anc-grandchild', 'anc-grandchild:1', 'true']);
      await ok(e, ['tag', IMG, 'anc-alias:1']);
      const id = await ok(e, ['image', 'inspect', '-f', '{{.Id}}', 'anc-child:1']);
      const ps = async (...filters: string[]) => {
        const r = await e.docker([
          'ps',
          '-a',
          '--format',
          '{{.Names}} {{.Image}}',
          ...filters.flatMap((f) => ['--filter', `ancestor=${f}`]),
        ]);
        assert.equal(r.code, 0, r.stderr);
        return r.stdout
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('anc-'))
          .sort();
      };
      return {
        base: await ps(IMG),
        alias: await ps('anc-alias:1'),
        child: await ps('anc-child:1'),
        fullId: await ps(id),
        hexId: await ps(id.slice(7)),
        shortId: await ps(id.slice(7, 19)),
        grandchild: await ps('anc-grandchild:1'),
        unknown: await ps('nosuch:1'),
        untagged: await ps('anc-child'),
        unknownAndChild: await ps('nosuch:1', 'anc-child:1'),
      };
    });
    const all = ['anc-base bbox:1', 'anc-child anc-child:1', 'anc-grandchild anc-grandchild:1'];
    const fromChild = ['anc-child anc-child:1', 'anc-grandchild anc-grandchild:1'];
    assert.deepEqual(got, {
      base: all,
      alias: all,
      child: fromChild,
      fullId: fromChild,
      hexId: fromChild,
      shortId: fromChild,
      grandchild: ['anc-grandchild anc-grandchild:1'],
      unknown: [],
      untagged: [],
      unknownAndChild: fromChild,
    });
    if (want) assert.deepEqual(got, want, 'berth and the reference dockerd');
  });

  test('--volumes-from: every mount of the other container, its mode or :ro; -v NAME:/dst wins', async () => {
    const [got, want] = await onEach(async (e) => {
      const host = path.join(e.work, 'vf-host');
      await fsp.mkdir(host);
      const inspect = async (name: string) => ({
        from: await ok(e, ['inspect', '-f', '{{json .HostConfig.VolumesFrom}}', name]),
        mounts: mounts(await ok(e, ['inspect', '-f', '{{json .Mounts}}', name])),
      });
      await ok(e, [
        'create',
        '--name',
        'vf-src',
        '-v',
        '/vol1',
        '-v',
        `${host}:/b:ro`,
        '-v',
        'vf-named:/n',
        IMG,
        'true',
      ]);
      const o: Record<string, unknown> = {};
      // written through one container, read through the one using its volumes
      const w = await e.docker([
        'run',
        '--name',
        'vf-w',
        '--volumes-from',
        'vf-src',
        IMG,
        'sh',
        '-c',
        'echo shared > /vol1/f',
      ]);
      assert.equal(w.code, 0, w.stderr);
      o.w = await inspect('vf-w');
      const mnt = "grep -E ' /(vol1|b|n|data) ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1 | sort; cat /vol1/f";
      o.rw = (await e.docker(['run', '--rm', '--volumes-from', 'vf-w', IMG, 'sh', '-c', mnt])).stdout;
      o.ro = (await e.docker(['run', '--rm', '--volumes-from', 'vf-src:ro', IMG, 'sh', '-c', mnt])).stdout;
      await ok(e, [
        'create',
        '--name',
        'vf-ro',
        '--volumes-from',
        'vf-src:ro',
        '-v',
        '/b',
        '-v',
        'vf-other:/vol1',
        IMG,
        'true',
      ]);
      o.roInspect = await inspect('vf-ro');
      const bad = async (spec: string) => {
        const r = await e.docker(['create', '--volumes-from', spec, IMG, 'true']);
        return { code: r.code, stderr: r.stderr.trim() };
      };
      o.unknown = await bad('vf-nosuch');
      o.badMode = await bad('vf-src:xx');
      o.propagation = await bad('vf-src:shared');
      return o;
    });
    assert.equal(got.rw, '/b ro\n/data rw\n/n rw\n/vol1 rw\nshared\n');
    assert.equal(got.ro, '/b ro\n/data ro\n/n ro\n/vol1 ro\nshared\n');
    const w = got.w as { from: string; mounts: string[] };
    assert.equal(w.from, '["vf-src"]');
    assert.equal(w.mounts.length, 4, w.mounts.join('\n'));
    assert.ok(
      w.mounts.every((m) => JSON.parse(m).Mode === ''),
      w.mounts.join('\n'),
    );
    const ro = got.roInspect as { from: string; mounts: string[] };
    const vol1 = ro.mounts.map((m) => JSON.parse(m)).find((m) => m.Destination === '/vol1');
    assert.equal(vol1.Name, 'vf-other', '-v NAME:/vol1 wins over --volumes-from');
    const bmount = ro.mounts.map((m) => JSON.parse(m)).find((m) => m.Destination === '/b');
    assert.equal(bmount.Type, 'bind', '--volumes-from wins over an anonymous -v /b');
    assert.deepEqual(got.unknown, { code: 1, stderr: 'Error response from daemon: No such container: vf-nosuch' });
    assert.deepEqual(got.badMode, { code: 1, stderr: 'Error response from daemon: invalid mode: xx' });
    assert.deepEqual(got.propagation, { code: 1, stderr: 'Error response from daemon: invalid mode: shared' });
    if (want) {
      // bind sources live under each engine's own work dir
      const norm = (x: unknown) =>
        JSON.parse(JSON.stringify(x).replaceAll(`${work}/berth/`, '').replaceAll(`${work}/ref/`, ''));
      assert.deepEqual(norm(got), norm(want), 'berth and the reference dockerd');
    }
  });
});
