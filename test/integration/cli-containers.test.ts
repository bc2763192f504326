// The docker CLIs (28.x, and 20.10 for a subset) running containers against
// berthd: run/logs/stop/exec/attach/ps/inspect/top/stats/cp/diff/commit/
// export/rename/update/pause/kill/wait, restart policies, --rm, read-only,
// volumes, rm/prune, rmi conflicts and bad input. The image is made locally
// (busybox-static via `docker import`); nothing leaves the machine.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IMPORT_CHANGES, makeTestRootfsTar, until } from './cli-containers-kit.js';
import { Berthd, CLI20, CLI28, cliUnavailable } from './cli-kit.js';

const skip = cliUnavailable() ?? (fs.existsSync('/usr/sbin/runc') ? undefined : 'runc is missing');
if (skip) console.log(`# skipping cli-containers: ${skip}`);

const IMG = 'bbox:1';

describe('docker CLI against berthd (containers, volumes)', { skip, timeout: 230_000 }, () => {
  let b: Berthd;
  let work: string;
  const dk = (args: string[], input?: string, cli: string = CLI28) =>
    b.docker(cli, args, { ...(input !== undefined ? { input } : {}), timeoutMs: 40_000 });
  const ok = async (args: string[], input?: string, cli: string = CLI28) => {
    const r = await dk(args, input, cli);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'cli-ctr-'));
    b = await Berthd.start();
    const tar = await makeTestRootfsTar(work);
    await ok(['import', ...IMPORT_CHANGES, tar, IMG]);
  });

  after(async () => {
    await b?.destroy();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  test('run --rm echo (CLI 28 and 20.10), exit codes, env and user', async () => {
    for (const cli of [CLI28, CLI20]) {
      const r = await dk(['run', '--rm', IMG, '/bin/busybox', 'echo', 'hi'], undefined, cli);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'hi\n');
    }
    assert.equal((await dk(['run', '--rm', IMG, 'sh', '-c', 'exit 42'])).code, 42);
    assert.equal(await ok(['run', '--rm', '-e', 'FOO=bar', IMG, 'sh', '-c', 'echo $FOO']), 'bar\n');
    assert.equal(
      await ok(['run', '--rm', '-u', 'user1', IMG, 'id']),
      'uid=1000(user1) gid=1000(user1) groups=1000(user1),2000(extra)\n',
    );
    assert.equal((await ok(['ps', '-aq'])).trim(), '', 'every --rm container is gone');
    // the 20.10 CLI (API 1.41) for the everyday verbs
    await ok(['run', '-d', '--name', 'old-cli', IMG, 'sh', '-c', 'echo started; sleep 300'], undefined, CLI20);
    assert.equal(await ok(['exec', '-i', 'old-cli', 'cat'], 'in\n', CLI20), 'in\n');
    await until(async () => (await ok(['logs', 'old-cli'], undefined, CLI20)) === 'started\n');
    assert.match(await ok(['ps', '--format', '{{.Names}} {{.State}}'], undefined, CLI20), /^old-cli running\n$/);
    await ok(['rm', '-f', 'old-cli'], undefined, CLI20);
  });

  test('run -d, logs -f, stop; docker logs options', async () => {
    const id = (
      await ok([
        'run',
        '-d',
        '--name',
        'looper',
        IMG,
        'sh',
        '-c',
        'trap "echo bye; exit 0" TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done',
      ])
    ).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const follow = spawn(CLI28, ['-H', b.host, 'logs', '-f', 'looper'], {
      env: { ...process.env, DOCKER_CONFIG: path.join(b.dir, 'cli-config') },
    });
    let followed = '';
    follow.stdout.on('data', (d: Buffer) => {
      followed += d.toString();
    });
    const followEnd = new Promise<number | null>((r) => follow.on('close', r));
    await until(() => /line 5\n/.test(followed));
    const t0 = Date.now();
    await ok(['stop', 'looper']);
    assert.ok(Date.now() - t0 < 8000, 'stopped by its TERM trap, not by the 10 s timeout');
    assert.equal(await followEnd, 0);
    assert.match(followed, /line 0\nline 1\n[\s\S]*bye\n$/);
    assert.equal(await ok(['logs', '--tail', '1', 'looper']), 'bye\n');
    const ts = await ok(['logs', '-t', '--tail', '2', 'looper']);
    assert.match(ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line \d+\n.* bye\n$/);
    assert.equal((await ok(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'looper'])).trim(), 'exited 0');
    assert.ok(fs.existsSync(path.join(b.dataRoot, 'containers', id, `${id}-json.log`)));
  });

  test('exec with stdin, exit codes, TTY; attach', async () => {
    await ok(['run', '-d', '--name', 'ex', IMG, 'sleep', '300']);
    assert.equal(await ok(['exec', '-i', 'ex', 'cat'], 'through stdin\n'), 'through stdin\n');
    assert.equal((await dk(['exec', 'ex', 'sh', '-c', 'exit 3'])).code, 3);
    assert.equal(await ok(['exec', '-u', 'user1', '-w', '/tmp', 'ex', 'sh', '-c', 'id -u; pwd']), '1000\n/tmp\n');
    assert.equal(await ok(['exec', '-e', 'A=b', 'ex', 'sh', '-c', 'echo $A']), 'b\n');
    // a TTY through script(1), which gives the CLI a terminal
    const tty = await new Promise<string>((resolve) => {
      const p = spawn('script', ['-qc', `${CLI28} -H ${b.host} exec -t ex tty`, '/dev/null'], {
        env: { ...process.env, DOCKER_CONFIG: path.join(b.dir, 'cli-config') },
      });
      let out = '';
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      p.on('close', () => resolve(out));
    });
    assert.match(tty, /\/dev\/pts\/\d+/);
    const runTty = await new Promise<string>((resolve) => {
      const p = spawn(
        'script',
        ['-qc', `${CLI28} -H ${b.host} run --rm -t ${IMG} sh -c 'tty; echo done'`, '/dev/null'],
        {
          env: { ...process.env, DOCKER_CONFIG: path.join(b.dir, 'cli-config') },
        },
      );
      let out = '';
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      p.on('close', () => resolve(out));
    });
    assert.match(runTty, /\/dev\/pts\/0\r*\ndone/);
    // attach to a running container: stdout and stderr separated
    await ok([
      'run',
      '-d',
      '--name',
      'att',
      IMG,
      'sh',
      '-c',
      'sleep 1; echo out1; echo err1 >&2; sleep 0.3; echo out2',
    ]);
    const a = await dk(['attach', 'att']);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout, 'out1\nout2\n');
    assert.match(a.stderr, /err1/);
    // run -i: stdin to the container, StdinOnce closes it
    assert.equal(await ok(['run', '--rm', '-i', IMG, 'sh', '-c', 'cat; echo end'], 'piped\n'), 'piped\nend\n');
    await ok(['rm', '-f', 'ex', 'att']);
  });

  test('ps filters and --format, inspect, top, stats', async () => {
    await ok(['run', '-d', '--name', 'psrun', '-l', 'tier=web', IMG, 'sleep', '300']);
    await ok(['run', '--name', 'psexit', '-l', 'tier=db', IMG, 'sh', '-c', 'exit 2']).catch(() => {});
    await dk(['run', '--name', 'psexit0', IMG, 'true']);
    const names = async (args: string[]) =>
      (await ok(['ps', ...args, '--format', '{{.Names}}'])).trim().split('\n').filter(Boolean).sort();
    assert.deepEqual(await names([]), ['psrun']);
    assert.deepEqual(await names(['-a', '--filter', 'label=tier=db']), ['psexit']);
    assert.deepEqual(await names(['-a', '--filter', 'exited=2']), ['psexit']);
    assert.deepEqual(await names(['-a', '--filter', 'status=exited', '--filter', 'name=psexit']), [
      'psexit',
      'psexit0',
    ]);
    assert.deepEqual(await names(['-a', '--filter', 'ancestor=bbox:1', '--filter', 'name=ps']), [
      'psexit',
      'psexit0',
      'psrun',
    ]);
    assert.deepEqual(await names(['--filter', 'is-task=true']), []);
    const id = (await ok(['inspect', '-f', '{{.Id}}', 'psrun'])).trim();
    assert.deepEqual(await names(['-a', '--filter', `id=${id.slice(0, 10)}`]), ['psrun']);
    assert.deepEqual(await names(['-a', '--filter', 'before=psrun', '--filter', 'name=ps']), []);
    const bad = await dk(['ps', '--filter', 'status=sleeping']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Invalid filter 'status=sleeping'/);
    const st = await ok(['ps', '--format', '{{.Status}}|{{.Command}}|{{.Image}}', '--filter', 'name=psrun']);
    assert.match(st, /^Up .*\|"sleep 300"\|bbox:1\n$/);
    const ins = JSON.parse(await ok(['inspect', 'psrun']))[0];
    assert.equal(ins.State.Status, 'running');
    assert.ok(ins.State.Pid > 0);
    assert.equal(ins.Name, '/psrun');
    assert.equal(ins.Path, 'sleep');
    assert.deepEqual(ins.Args, ['300']);
    assert.equal(ins.Config.Image, IMG);
    assert.equal(ins.HostConfig.NetworkMode, 'none');
    assert.equal(ins.GraphDriver.Name, 'overlay2');
    assert.ok(fs.existsSync(ins.GraphDriver.Data.UpperDir));
    assert.equal(ins.LogPath, path.join(b.dataRoot, 'containers', id, `${id}-json.log`));
    assert.equal(ins.RestartCount, 0);
    assert.equal(ins.Mounts[0].Destination, '/data', 'the image VOLUME is an anonymous volume');
    const top = await ok(['top', 'psrun']);
    assert.match(top, /UID\s+PID[\s\S]*sleep 300/);
    const stats = await ok(['stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}} {{.MemUsage}}', 'psrun']);
    assert.match(stats, /^psrun 1 [\d.]+[KMG]i?B \/ [\d.]+[KMG]iB\n$/);
    await ok(['rm', '-f', 'psrun', 'psexit', 'psexit0']);
  });

  test('cp both ways, hostile paths contained; diff, commit, export', async () => {
    await dk([
      'run',
      '--name',
      'fsc',
      IMG,
      'sh',
      '-c',
      'echo data > /tmp/f; mkdir /newd; ln -s /etc /tmp/etcl; ln -s ../../../../../../etc /tmp/rel',
    ]);
    const out = path.join(work, 'cpout');
    await fsp.mkdir(out);
    await ok(['cp', 'fsc:/tmp/f', path.join(out, 'f')]);
    assert.equal(fs.readFileSync(path.join(out, 'f'), 'utf8'), 'data\n');
    const hostFile = path.join(work, 'hostfile');
    fs.writeFileSync(hostFile, 'from-host\n');
    await ok(['cp', hostFile, 'fsc:/newd/']);
    assert.equal(await ok(['cp', 'fsc:/newd/hostfile', '-']).then((t) => t.includes('from-host')), true);
    // symlinks pointing out and ../ paths stay inside the container
    const marker = `berth-cp-${process.pid}`;
    await ok(['cp', hostFile, `fsc:/tmp/etcl/${marker}`]);
    await ok(['cp', hostFile, `fsc:/tmp/rel/${marker}-2`]);
    await ok(['cp', hostFile, `fsc:../../../../etc/${marker}-3`]);
    for (const s of ['', '-2', '-3']) assert.ok(!fs.existsSync(`/etc/${marker}${s}`), 'the host is untouched');
    const listing = await ok(['cp', 'fsc:/etc/', '-']);
    for (const s of ['', '-2', '-3'])
      assert.ok(listing.includes(`etc/${marker}${s}`), `${marker}${s} landed in the container`);
    const shadow = await dk(['cp', 'fsc:../../../etc/shadow', '-']);
    assert.notEqual(shadow.code, 0);
    assert.match(shadow.stderr, /Could not find the file/);
    const diff = await ok(['diff', 'fsc']);
    assert.match(diff, /^A \/newd$/m);
    assert.match(diff, /^A \/tmp\/f$/m);
    assert.match(diff, /^C \/tmp$/m);
    assert.doesNotMatch(diff, /hosts|resolv/, 'init-layer files are not changes');
    await ok(['commit', '-m', 'msg', '-a', 'me', '-c', 'ENV X=1', 'fsc', 'committed:1']);
    assert.equal(await ok(['run', '--rm', 'committed:1', 'sh', '-c', 'cat /tmp/f; echo X=$X']), 'data\nX=1\n');
    const hist = await ok(['history', '--format', '{{.Comment}}', 'committed:1']);
    assert.match(hist, /^msg\n/);
    const parent = JSON.parse(await ok(['image', 'inspect', 'committed:1']))[0];
    assert.equal(parent.Author, 'me');
    assert.equal(parent.Container, (await ok(['inspect', '-f', '{{.Id}}', 'fsc'])).trim());
    const tarFile = path.join(work, 'export.tar');
    await ok(['export', '-o', tarFile, 'fsc']);
    const { execFileSync } = await import('node:child_process');
    const entries = execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' }).split('\n');
    for (const e of ['bin/busybox', 'tmp/f', 'newd/hostfile', '.dockerenv']) assert.ok(entries.includes(e), e);
    // rmi of an image a container uses: dockerd's conflict
    await ok(['create', '--name', 'user-of-committed', 'committed:1', 'true']);
    const rmi = await dk(['rmi', 'committed:1']);
    assert.notEqual(rmi.code, 0);
    assert.match(
      rmi.stderr,
      /conflict: unable to remove repository reference "committed:1" \(must force\) - container [0-9a-f]{12} is using its referenced image [0-9a-f]{12}/,
    );
    await ok(['rm', 'user-of-committed', 'fsc']);
    await ok(['rmi', 'committed:1']);
  });

  test('rename, update --memory, pause/unpause, kill -s USR1, wait', async () => {
    await ok([
      'run',
      '-d',
      '--name',
      'life',
      IMG,
      'sh',
      '-c',
      'trap "echo usr1; exit 7" USR1; while true; do sleep 0.1; done',
    ]);
    await ok(['rename', 'life', 'life2']);
    assert.equal((await ok(['ps', '--format', '{{.Names}}', '--filter', 'name=life'])).trim(), 'life2');
    await ok(['update', '--memory', '64m', '--memory-swap', '128m', 'life2']);
    const id = (await ok(['inspect', '-f', '{{.Id}}', 'life2'])).trim();
    assert.equal((await ok(['inspect', '-f', '{{.HostConfig.Memory}}', 'life2'])).trim(), String(64 << 20));
    const lim = `/sys/fs/cgroup/memory/berth/${id}/memory.limit_in_bytes`;
    if (fs.existsSync(lim)) assert.equal(fs.readFileSync(lim, 'utf8').trim(), String(64 << 20));
    await ok(['pause', 'life2']);
    assert.equal((await ok(['inspect', '-f', '{{.State.Status}}', 'life2'])).trim(), 'paused');
    const dup = await dk(['pause', 'life2']);
    assert.match(dup.stderr, /is already paused/);
    await ok(['unpause', 'life2']);
    const waiter = dk(['wait', 'life2']);
    await ok(['kill', '-s', 'USR1', 'life2']);
    const w = await waiter;
    assert.equal(w.stdout.trim(), '7');
    assert.equal(await ok(['logs', 'life2']), 'usr1\n');
    const notRunning = await dk(['kill', 'life2']);
    assert.notEqual(notRunning.code, 0);
    assert.match(notRunning.stderr, /Container [0-9a-f]{64} is not running/);
    await ok(['rm', 'life2']);
  });

  test('restart policy on-failure:2, --rm, --read-only --tmpfs', async () => {
    await ok(['run', '-d', '--name', 'flaky', '--restart', 'on-failure:2', IMG, 'sh', '-c', 'echo run; exit 1']);
    await until(
      async () => (await ok(['inspect', '-f', '{{.State.Status}} {{.RestartCount}}', 'flaky'])).trim() === 'exited 2',
      20_000,
      200,
    );
    assert.equal(await ok(['logs', 'flaky']), 'run\nrun\nrun\n');
    await ok(['rm', 'flaky']);
    await ok(['run', '-d', '--rm', '--name', 'gone', IMG, 'true']);
    await until(async () => (await dk(['inspect', 'gone'])).code !== 0);
    const ro = await dk([
      'run',
      '--rm',
      '--read-only',
      '--tmpfs',
      '/run',
      IMG,
      'sh',
      '-c',
      'touch /run/ok && echo tmpfs-ok; touch /x',
    ]);
    assert.equal(ro.stdout, 'tmpfs-ok\n');
    assert.match(ro.stderr, /Read-only file system/);
    assert.equal(ro.code, 1);
  });

  test('volumes: named, anonymous, bind; docker volume commands; rm -v; prune', async () => {
    const leftovers = (await ok(['ps', '-aq'])).trim().split('\n').filter(Boolean);
    if (leftovers.length) await ok(['rm', '-f', '-v', ...leftovers]);
    await ok(['volume', 'prune', '-f']);
    await ok(['volume', 'create', '--label', 'k=v', 'vol1']);
    assert.equal((await ok(['volume', 'ls', '-q', '--filter', 'label=k=v'])).trim(), 'vol1');
    const vi = JSON.parse(await ok(['volume', 'inspect', 'vol1']))[0];
    assert.equal(vi.Mountpoint, path.join(b.dataRoot, 'volumes', 'vol1', '_data'));
    const bind = path.join(work, 'bind');
    await fsp.mkdir(bind);
    fs.writeFileSync(path.join(bind, 'in'), 'bound\n');
    await ok([
      'run',
      '--name',
      'vols',
      '-v',
      'vol1:/v',
      '-v',
      '/anon',
      '-v',
      `${bind}:/b`,
      IMG,
      'sh',
      '-c',
      'echo keep > /v/k; cat /b/in; echo new > /b/out; cat /data/hello',
    ]);
    assert.equal(await ok(['logs', 'vols']), 'bound\nfrom-image\n', 'bind visible; image content copied up into /data');
    assert.equal(fs.readFileSync(path.join(bind, 'out'), 'utf8'), 'new\n');
    assert.equal(fs.readFileSync(path.join(vi.Mountpoint, 'k'), 'utf8'), 'keep\n');
    const mounts = JSON.parse(await ok(['inspect', '-f', '{{json .Mounts}}', 'vols'])) as Array<{
      Type: string;
      Name?: string;
      Destination: string;
    }>;
    const anon = mounts.filter((m) => m.Type === 'volume' && m.Name !== 'vol1').map((m) => m.Name!);
    assert.equal(anon.length, 2, 'the -v /anon and the image VOLUME /data');
    const inUse = await dk(['volume', 'rm', 'vol1']);
    assert.notEqual(inUse.code, 0);
    assert.match(inUse.stderr, /volume is in use/);
    assert.deepEqual((await ok(['volume', 'ls', '-q', '--filter', 'dangling=true'])).trim(), '');
    await ok(['rm', '-v', 'vols']);
    const left = (await ok(['volume', 'ls', '-q'])).trim().split('\n');
    assert.deepEqual(left, ['vol1'], 'rm -v removed the anonymous volumes, kept the named one');
    await ok(['volume', 'create', 'vol2']);
    const pr = await ok(['volume', 'prune', '-f']);
    assert.match(pr, /vol1/);
    assert.equal((await ok(['volume', 'ls', '-q'])).trim(), '');
  });

  test('rm -f, container prune, bad input gets dockerd errors and creates nothing', async () => {
    const leftovers = (await ok(['ps', '-aq'])).trim().split('\n').filter(Boolean);
    if (leftovers.length) await ok(['rm', '-f', ...leftovers]);
    await ok(['run', '-d', '--name', 'running1', IMG, 'sleep', '300']);
    const rm = await dk(['rm', 'running1']);
    assert.match(
      rm.stderr,
      /You cannot remove a running container [0-9a-f]{64}\. Stop the container before attempting removal or force remove/,
    );
    await ok(['rm', '-f', 'running1']);
    await dk(['run', '--name', 'stopped1', IMG, 'true']);
    await ok(['create', '--name', 'created1', IMG, 'true']);
    const pr = await ok(['container', 'prune', '-f']);
    assert.match(pr, /Deleted Containers:/);
    assert.equal((await ok(['ps', '-aq'])).trim(), '');
    await ok(['create', '--name', 'taken', IMG, 'true']);
    const bad: Array<[string[], RegExp]> = [
      [['run', '--pull', 'never', 'missing:1'], /No such image: missing:1/],
      [
        ['run', '--mount', 'type=bind,source=/nonexistent-berth,target=/x', IMG, 'true'],
        /bind source path does not exist: \/nonexistent-berth/,
      ],
      [
        ['run', '--name', 'taken', IMG, 'true'],
        /Conflict\. The container name "\/taken" is already in use by container/,
      ],
      [['run', '--restart', 'bogus', IMG, 'true'], /invalid restart policy/],
    ];
    for (const [args, re] of bad) {
      const r = await dk(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
    assert.equal((await ok(['ps', '-a', '--format', '{{.Names}}'])).trim(), 'taken', 'nothing else was created');
    await ok(['rm', 'taken']);
    const info = JSON.parse(await ok(['info', '--format', '{{json .}}']));
    assert.equal(info.Containers, 0);
  });
});
