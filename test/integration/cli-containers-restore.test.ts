// berthd restarts with running containers: with live-restore a kill -9 of
// berthd leaves the container running and logging through its shim, and the
// next berthd reattaches (ps, logs -f, stop); without live-restore a SIGTERM
// stops containers and the next start brings back `--restart always` ones.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IMPORT_CHANGES, makeTestRootfsTar, until } from './cli-containers-kit.js';
import { Berthd, CLI28, cliUnavailable } from './cli-kit.js';

const skip = cliUnavailable() ?? (fs.existsSync('/usr/sbin/runc') ? undefined : 'runc is missing');
if (skip) console.log(`# skipping cli-containers-restore: ${skip}`);

const IMG = 'bbox:1';
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Berthd.start on an existing dir: its log already holds an earlier "completed initialization". */
async function restart(dir: string): Promise<Berthd> {
  const logFile = path.join(dir, 'berthd.log');
  const count = () =>
    (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '').split('Daemon has completed initialization')
      .length;
  const before = count();
  const b = await Berthd.start({ dir, wait: false });
  await until(() => {
    if (b.hasExited) throw new Error(`berthd exited:\n${b.log()}`);
    return count() > before;
  }, 30_000);
  return b;
}

describe('berthd restart with running containers', { skip, timeout: 200_000 }, () => {
  let b: Berthd;
  let dir: string;
  const ok = async (args: string[]) => {
    const r = await b.docker(CLI28, args, { timeoutMs: 40_000 });
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'berthd-lr-'));
    fs.writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({ 'live-restore': true, 'shutdown-timeout': 5 }));
    b = await Berthd.start({ dir });
    await ok(['import', ...IMPORT_CHANGES, await makeTestRootfsTar(dir), IMG]);
  });

  after(async () => {
    if (b && !b.hasExited) {
      // last resort: no live-restore left so the containers get stopped
      const ids = (await b.docker(CLI28, ['ps', '-aq'])).stdout.trim().split('\n').filter(Boolean);
      if (ids.length) await b.docker(CLI28, ['rm', '-f', ...ids]);
    }
    await b?.stop();
    // a failed run can leave a live-restored container behind: kill it by its init and shim pids
    const cdir = path.join(dir, 'exec', 'containers');
    for (const id of fs.existsSync(cdir) ? fs.readdirSync(cdir) : []) {
      for (const f of ['init.pid', 'shim.pid']) {
        try {
          process.kill(Number(fs.readFileSync(path.join(cdir, id, f), 'utf8')), 'SIGKILL');
        } catch {
          // gone
        }
      }
      spawnSync('/usr/sbin/runc', ['--root', path.join(dir, 'exec', 'runtime-runc'), 'delete', '--force', id]);
    }
    await b?.destroy();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('live-restore: kill -9 berthd, the container keeps running and logging; the next berthd reattaches', async () => {
    const id = (
      await ok([
        'run',
        '-d',
        '--name',
        'lr',
        IMG,
        'sh',
        '-c',
        'trap "echo stopping; exit 0" TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done',
      ])
    ).trim();
    const pid = Number((await ok(['inspect', '-f', '{{.State.Pid}}', 'lr'])).trim());
    const logPath = path.join(b.dataRoot, 'containers', id, `${id}-json.log`);
    await until(() => fs.existsSync(logPath) && fs.statSync(logPath).size > 0);
    process.kill(b.pid, 'SIGKILL');
    await b.exit;
    const size0 = fs.statSync(logPath).size;
    await new Promise((r) => setTimeout(r, 700));
    assert.ok(alive(pid), 'the container outlives berthd');
    assert.ok(fs.statSync(logPath).size > size0, 'its log keeps growing while berthd is away');

    b = await restart(dir);
    assert.match(b.log(), /reattached to a running container/);
    assert.equal((await ok(['ps', '--format', '{{.Names}} {{.State}}'])).trim(), 'lr running');
    assert.equal(Number((await ok(['inspect', '-f', '{{.State.Pid}}', 'lr'])).trim()), pid);
    const follow = spawn(CLI28, ['-H', b.host, 'logs', '-f', '--tail', '2', 'lr'], {
      env: { ...process.env, DOCKER_CONFIG: path.join(b.dir, 'cli-config') },
    });
    let out = '';
    follow.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const ended = new Promise<number | null>((r) => follow.on('close', r));
    await until(() => (out.match(/tick/g) ?? []).length >= 4);
    await ok(['exec', 'lr', 'true']);
    await ok(['stop', 'lr']);
    assert.equal(await ended, 0, 'logs -f ends when the container stops');
    assert.match(out, /stopping\n$/);
    assert.ok(!alive(pid));
    assert.equal((await ok(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'lr'])).trim(), 'exited 0');
    await ok(['rm', 'lr']);
  });

  test('a start cut short by a crash (process running, not yet recorded): the next berthd removes that process', async () => {
    const id = (await ok(['create', '--name', 'cut', IMG, 'sleep', '1000'])).trim();
    await ok(['start', 'cut']);
    const pid = Number((await ok(['inspect', '-f', '{{.State.Pid}}', 'cut'])).trim());
    assert.ok(alive(pid));
    process.kill(b.pid, 'SIGKILL');
    await b.exit;
    // what config.v2.json holds when berthd dies between the shim's `runc run` and recording the start
    const cfgPath = path.join(b.dataRoot, 'containers', id, 'config.v2.json');
    const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as { State: Record<string, unknown> };
    Object.assign(cfg.State, { Running: false, Status: 'created', Pid: 0, StartedAt: '0001-01-01T00:00:00Z' });
    fs.writeFileSync(cfgPath, JSON.stringify(cfg));
    b = await restart(dir);
    assert.match(b.log(), /a start was interrupted/);
    await until(() => !alive(pid), 10_000);
    assert.equal((await ok(['ps', '-a', '--filter', 'name=cut', '--format', '{{.State}}'])).trim(), 'created');
    await ok(['start', 'cut']);
    assert.equal((await ok(['inspect', '-f', '{{.State.Running}}', 'cut'])).trim(), 'true');
    await ok(['rm', '-f', 'cut']);
  });

  test('without live-restore: SIGTERM stops containers; --restart always ones start again at boot', async () => {
    await b.stop();
    fs.writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({ 'shutdown-timeout': 5 }));
    b = await restart(dir);
    await ok(['run', '-d', '--name', 'always', '--restart', 'always', IMG, 'sleep', '300']);
    await ok(['run', '-d', '--name', 'plain', IMG, 'sleep', '300']);
    const pid = Number((await ok(['inspect', '-f', '{{.State.Pid}}', 'plain'])).trim());
    const t0 = Date.now();
    assert.equal(await b.stop(), 0);
    assert.ok(Date.now() - t0 < 15_000, 'within shutdown-timeout');
    assert.ok(!alive(pid), 'stopped at shutdown');
    b = await restart(dir);
    await until(async () => (await ok(['ps', '--format', '{{.Names}}'])).trim() === 'always');
    assert.match(
      (await ok(['ps', '-a', '--filter', 'name=plain', '--format', '{{.Status}}'])).trim(),
      /^Exited \(137\)/,
    );
    await ok(['rm', '-f', 'always', 'plain']);
  });
});
