import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Container } from './container.js';
import { buildHosts, buildResolvConf } from './dns.js';
import { mergeHealthcheck, recordProbe } from './health.js';
import { setupInitLayer } from './initlayer.js';
import { entrypointAndArgs, mergeImageConfig, processEnv } from './merge.js';
import { NameRegistry, nameConflictMessage, randomName } from './names.js';
import { parseRestartPolicy, RestartManager, validateRestartPolicy } from './restart.js';
import { statusOf, transitions } from './state.js';
import { ContainerStore } from './store.js';
import { parseSecurityOpts, validateHostConfig, validateSysctl } from './validate.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ctr-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const msg = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};
const ID1 = `ab${'1'.repeat(62)}`;
const ID2 = `ac${'2'.repeat(62)}`;

describe('names', () => {
  test('conflict text and validation as dockerd', () => {
    const r = new NameRegistry();
    assert.equal(r.reserve('web', ID1), '/web');
    assert.equal(
      msg(() => r.reserve('/web', ID2)),
      `Conflict. The container name "/web" is already in use by container "${ID1}". You have to remove (or rename) that container to be able to reuse that name.`,
    );
    assert.equal(
      msg(() => {
        const q = new NameRegistry();
        q.reserve('xx', 'y');
        q.reserve('xx', 'z');
      }),
      nameConflictMessage('/xx', 'y'),
    );
    assert.equal(
      msg(() => r.reserve('x', ID2)),
      'Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed',
    );
    assert.equal(
      msg(() => r.reserve('a b', ID2)),
      'Invalid container name (a b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed',
    );
    assert.match(randomName(), /^[a-z]+_[a-z]+$/);
    assert.match(randomName(1), /^[a-z]+_[a-z]+\d$/);
    assert.match(r.generate(ID2), /^\/[a-z]+_[a-z]+\d?$/);
  });
});

describe('store', () => {
  test('round trip, modes, lookups and errors', () => {
    const root = path.join(tmp, 'data');
    const s = ContainerStore.open(root);
    for (const [id, name] of [
      [ID1, 'one'],
      [ID2, 'two'],
    ] as const) {
      const c = new Container(s.dir, id, '2026-01-01T00:00:00.000000001Z');
      c.Name = s.names.reserve(name, id);
      c.Path = 'sh';
      c.Config = { Image: 'bb:1', Cmd: ['sh'], Env: ['A=b'], Labels: {} };
      c.HostConfig = { NetworkMode: 'none', RestartPolicy: { Name: 'no', MaximumRetryCount: 0 } };
      c.toDisk();
      s.add(c);
    }
    assert.equal(fs.statSync(path.join(s.dir)).mode & 0o777, 0o710);
    assert.equal(fs.statSync(path.join(s.dir, ID1)).mode & 0o777, 0o710);
    assert.equal(fs.statSync(path.join(s.dir, ID1, 'config.v2.json')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(s.dir, ID1, 'hostconfig.json')).mode & 0o777, 0o644);
    assert.equal(fs.statSync(path.join(s.dir, ID1, 'checkpoints')).mode & 0o777, 0o700);
    const s2 = ContainerStore.open(root);
    assert.equal(s2.get('one').ID, ID1);
    assert.equal(s2.get('/two').ID, ID2);
    assert.equal(s2.get('ab').ID, ID1);
    assert.equal(s2.get(ID2).Name, '/two');
    assert.equal(
      msg(() => s2.get('a')),
      'Multiple IDs found with provided prefix: a',
    );
    assert.equal(
      msg(() => s2.get('nonexist')),
      'No such container: nonexist',
    );
    const j = JSON.parse(fs.readFileSync(path.join(s.dir, ID1, 'config.v2.json'), 'utf8'));
    assert.deepEqual(Object.keys(j).slice(0, 6), ['StreamConfig', 'State', 'ID', 'Created', 'Managed', 'Path']);
    const h = JSON.parse(fs.readFileSync(path.join(s.dir, ID1, 'hostconfig.json'), 'utf8'));
    assert.equal(Object.keys(h)[0], 'Binds');
    assert.equal(h.ShmSize, 0);
    assert.deepEqual(
      s2
        .snapshot()
        .map((x) => x.ID)
        .sort(),
      [ID1, ID2],
    );
  });
});

describe('state machine', () => {
  test('created → running → paused → running → exited', () => {
    const c = new Container(tmp, ID1, 'x');
    assert.equal(statusOf(c.State), 'created');
    transitions.setRunning(c, 42);
    assert.equal(statusOf(c.State), 'running');
    assert.throws(() => transitions.setRunning(c, 43), /already running/);
    transitions.setPaused(c);
    assert.equal(statusOf(c.State), 'paused');
    transitions.setUnpaused(c);
    transitions.setRestarting(c, { exitCode: 1 });
    assert.equal(statusOf(c.State), 'restarting');
    transitions.setRunning(c, 44, false);
    transitions.setStopped(c, { exitCode: 3 });
    assert.equal(statusOf(c.State), 'exited');
    assert.equal(c.State.ExitCode, 3);
    transitions.setRemovalInProgress(c);
    assert.equal(statusOf(c.State), 'removing');
  });
});

describe('restart policy', () => {
  test('parse and validate (dockerd texts)', () => {
    assert.deepEqual(parseRestartPolicy('on-failure:3'), { Name: 'on-failure', MaximumRetryCount: 3 });
    assert.equal(
      msg(() => parseRestartPolicy('on-failure:x')),
      'maximum retry count must be an integer',
    );
    assert.equal(
      msg(() => validateRestartPolicy(parseRestartPolicy('bogus'))),
      "invalid restart policy 'bogus'",
    );
    assert.equal(
      msg(() => validateRestartPolicy(parseRestartPolicy('always:3'))),
      "maximum retry count cannot be used with restart policy 'always'",
    );
    assert.equal(
      msg(() => validateRestartPolicy({ Name: 'on-failure', MaximumRetryCount: -1 })),
      'maximum retry count cannot be negative',
    );
    assert.equal(
      msg(() =>
        validateHostConfig(
          { AutoRemove: true, RestartPolicy: { Name: 'always', MaximumRetryCount: 0 } },
          {},
          { numCpus: 2 },
        ),
      ),
      "can't create 'AutoRemove' container with restart policy",
    );
  });
  test('backoff: 100 ms doubling, reset after 10 s up, on-failure max', () => {
    const m = new RestartManager({ Name: 'always', MaximumRetryCount: 0 });
    const delays = [1, 2, 3, 4].map(() => m.shouldRestart(0, false, 50).delayMs);
    assert.deepEqual(delays, [100, 200, 400, 800]);
    assert.equal(m.shouldRestart(0, false, 10_000).delayMs, 100);
    const f = new RestartManager({ Name: 'on-failure', MaximumRetryCount: 2 });
    assert.equal(f.shouldRestart(0, false, 0).restart, false);
    assert.equal(f.shouldRestart(1, false, 0).restart, true);
    assert.equal(f.shouldRestart(1, false, 0).restart, true);
    assert.equal(f.shouldRestart(1, false, 0).restart, false);
    const u = new RestartManager({ Name: 'unless-stopped', MaximumRetryCount: 0 });
    assert.equal(u.shouldRestart(0, true, 0).restart, false);
    assert.equal(u.shouldRestart(0, false, 0).restart, true);
  });
});

describe('merge, env, health, security opts, sysctls', () => {
  test('image config merge and entrypoint rules', () => {
    const img = {
      Env: ['PATH=/bin', 'X=1'],
      Cmd: ['sh'],
      Entrypoint: ['/init'],
      WorkingDir: '/w',
      Volumes: { '/data': {} },
      Labels: { a: '1' },
      StopSignal: 'SIGQUIT',
      User: 'u',
    };
    const m = mergeImageConfig({ Image: 'i', Env: ['X=2', 'A=b'], Labels: { b: '2' } }, img);
    assert.deepEqual(m.Env, ['X=2', 'A=b', 'PATH=/bin']);
    assert.deepEqual(m.Labels, { a: '1', b: '2' });
    assert.deepEqual(entrypointAndArgs(m), { path: '/init', args: ['sh'] });
    assert.deepEqual(entrypointAndArgs(mergeImageConfig({ Image: 'i', Entrypoint: ['e'] }, img)), {
      path: 'e',
      args: [],
    });
    assert.equal(
      msg(() => entrypointAndArgs({})),
      'No command specified',
    );
    assert.deepEqual([m.WorkingDir, m.User, m.StopSignal], ['/w', 'u', 'SIGQUIT']);
    assert.deepEqual(processEnv({ Hostname: 'h', Env: ['A=b', 'PATH=/x'], Tty: true }), [
      'PATH=/x',
      'HOSTNAME=h',
      'TERM=xterm',
      'A=b',
    ]);
  });
  test('health merge and probe results', () => {
    assert.deepEqual(mergeHealthcheck({ Interval: 5e9 }, { Test: ['CMD', 'true'], Retries: 2 }), {
      Test: ['CMD', 'true'],
      Interval: 5e9,
      Retries: 2,
      Timeout: undefined,
      StartPeriod: undefined,
    });
    const c = new Container(tmp, ID1, 'x');
    c.Config.Healthcheck = { Test: ['CMD', 'x'], Retries: 2 };
    const t = new Date().toISOString();
    const r = (code: number) => recordProbe(c, { Start: t, End: t, ExitCode: code, Output: '' }, 0);
    assert.equal(r(1), 'starting');
    assert.equal(r(1), 'unhealthy');
    assert.equal(r(0), 'healthy');
    for (let i = 0; i < 6; i++) r(0);
    assert.equal(c.State.Health?.Log?.length, 5);
  });
  test('security opts and sysctls', () => {
    assert.deepEqual(parseSecurityOpts(['no-new-privileges', 'seccomp=unconfined']).noNewPrivileges, true);
    assert.equal(parseSecurityOpts(['no-new-privileges=false'], true).noNewPrivileges, false);
    assert.equal(
      msg(() => parseSecurityOpts(['bogus'])),
      'invalid --security-opt 1: "bogus"',
    );
    assert.equal(
      msg(() => parseSecurityOpts(['x=y'])),
      'invalid --security-opt 2: "x=y"',
    );
    assert.equal(
      msg(() => validateSysctl('kernel.foo', '1', 'none', 'private')),
      "sysctl 'kernel.foo=1' is not whitelisted",
    );
    validateSysctl('net.ipv4.ip_forward', '1', 'none', 'private');
    assert.match(
      msg(() => validateSysctl('net.ipv4.ip_forward', '1', 'host', 'private')),
      /not allowed in host network namespace/,
    );
  });
});

describe('files', () => {
  test('init layer entries', async () => {
    const r = path.join(tmp, 'init');
    fs.mkdirSync(path.join(r, 'etc'), { recursive: true });
    fs.symlinkSync('/outside', path.join(r, 'etc/hosts'));
    await setupInitLayer(r);
    for (const p of ['dev/pts', 'dev/shm', 'proc', 'sys']) assert.ok(fs.statSync(path.join(r, p)).isDirectory());
    for (const p of ['.dockerenv', 'etc/resolv.conf', 'etc/hosts', 'etc/hostname', 'dev/console']) {
      const st = fs.lstatSync(path.join(r, p));
      assert.ok(st.isFile(), p);
      assert.equal(st.mode & 0o777, 0o755 & ~process.umask());
    }
    assert.equal(fs.readlinkSync(path.join(r, 'etc/mtab')), '/proc/mounts');
  });
  test('resolv.conf and hosts', () => {
    assert.equal(
      buildResolvConf('nameserver 127.0.0.53\noptions edns0\n', {}),
      'options edns0\n\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n',
    );
    assert.equal(buildResolvConf('nameserver 10.0.0.1\n', {}), 'nameserver 10.0.0.1\n');
    assert.equal(
      buildResolvConf('nameserver 10.0.0.1\n', { dns: ['1.1.1.1'], dnsSearch: ['ex.com'], dnsOptions: ['ndots:2'] }),
      'search ex.com\nnameserver 1.1.1.1\noptions ndots:2\n',
    );
    assert.ok(buildHosts({}).startsWith('127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'));
  });
});
