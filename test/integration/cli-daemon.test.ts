// berthd as a process: --validate/--version, unsupported settings, pidfile and
// data-root ownership, SIGHUP reload (good and bad daemon.json), SIGTERM
// clean-up, listeners (unix mode/group, tcp refusal without TLS, TLS client
// verification, fd:// socket activation), metrics, and `berth storage`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BERTH, BERTHD, Berthd, CLI20, CLI28, cliUnavailable, run } from './cli-kit.js';

const skip = cliUnavailable();
if (skip) console.log(`# skipping cli-daemon: ${skip}`);

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('timed out');
}

describe('berthd process', { skip, timeout: 170_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'cli-daemon-'));
  });
  after(async () => {
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('--validate, --version, --help and unsupported settings', async () => {
    const cfg = path.join(dir, 'ok.json');
    fs.writeFileSync(cfg, JSON.stringify({ labels: ['a=b'], 'max-concurrent-downloads': 4 }));
    let r = await run(process.execPath, [BERTHD, '--validate', '--config-file', cfg]);
    assert.deepEqual([r.code, r.stdout], [0, 'configuration OK\n']);
    r = await run(process.execPath, [BERTHD, '--version']);
    assert.match(r.stdout, /^berthd version /);
    r = await run(process.execPath, [BERTHD, '--help']);
    assert.match(r.stdout, /--data-root/);
    fs.writeFileSync(cfg, '{"bip": "10.10.0.1/24", "userns-remap": "default"}');
    r = await run(process.execPath, [BERTHD, '--validate', '--config-file', cfg]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not support these settings yet: bip .*userns-remap/);
    fs.writeFileSync(cfg, '{"labels": ["a=b"],}');
    r = await run(process.execPath, [BERTHD, '--validate', '--config-file', cfg]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /line 1/);
    // networking switched off is the truth for berth: accepted
    r = await run(process.execPath, [
      BERTHD,
      '--validate',
      '--bridge=none',
      '--iptables=false',
      '--config-file',
      '/dev/null',
    ]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('pidfile and data-root: a second daemon is refused; SIGTERM exits 0 and cleans up', async () => {
    const b = await Berthd.start({ dir: path.join(dir, 'one') });
    try {
      const st = fs.statSync(b.socket);
      assert.equal(st.mode & 0o777, 0o660);
      const dockerGid = spawnSync('getent', ['group', 'docker'], { encoding: 'utf8' }).stdout.split(':')[2];
      if (dockerGid) assert.equal(st.gid, Number(dockerGid));
      // same pidfile
      const second = await run(process.execPath, [
        BERTHD,
        '--data-root',
        path.join(dir, 'other-root'),
        '--pidfile',
        b.pidfile,
        '--config-file',
        '/dev/null',
        '-H',
        `unix://${path.join(dir, 'x.sock')}`,
      ]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /pid file found, ensure docker is not running/);
      // same data-root, other pidfile
      const third = await run(process.execPath, [
        BERTHD,
        '--data-root',
        b.dataRoot,
        '--pidfile',
        path.join(dir, 'third.pid'),
        '--config-file',
        '/dev/null',
        '-H',
        `unix://${path.join(dir, 'y.sock')}`,
      ]);
      assert.equal(third.code, 1);
      assert.match(third.stderr, /pid file found/);
      assert.equal(fs.existsSync(path.join(dir, 'y.sock')), false);
      // berth storage refuses the root while berthd has it
      const st2 = await run(process.execPath, [
        BERTH,
        'storage',
        'ls',
        '--data-root',
        b.dataRoot,
        '--pidfile',
        path.join(dir, 's.pid'),
      ]);
      assert.equal(st2.code, 1);
      assert.match(st2.stderr, /in use/);
    } finally {
      const code = await b.stop('SIGTERM');
      assert.equal(code, 0);
    }
    assert.equal(fs.existsSync(b.socket), false);
    assert.equal(fs.existsSync(b.pidfile), false);
    assert.match(b.log(), /Daemon shutdown complete/);
    // and now berth storage works on it
    const ls = await run(process.execPath, [
      BERTH,
      'storage',
      'ls',
      '--data-root',
      b.dataRoot,
      '--pidfile',
      path.join(dir, 's.pid'),
    ]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^REPOSITORY/);
    const check = await run(process.execPath, [
      BERTH,
      'storage',
      'check',
      '--data-root',
      b.dataRoot,
      '--pidfile',
      path.join(dir, 's.pid'),
    ]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  });

  test('SIGHUP: a bad daemon.json keeps the old config; a good one applies labels and debug', async () => {
    const d = path.join(dir, 'hup');
    await fsp.mkdir(d, { recursive: true });
    const cfg = path.join(d, 'daemon.json');
    fs.writeFileSync(cfg, JSON.stringify({ labels: ['v=1'] }));
    const b = await Berthd.start({ dir: d, configFile: cfg });
    try {
      const labels = async () => (await b.docker(CLI28, ['info', '--format', '{{json .Labels}}'])).stdout.trim();
      assert.equal(await labels(), '["v=1"]');
      fs.writeFileSync(cfg, '{"labels": ["v=2"], "max-concurrent-downloads": "x"}');
      process.kill(b.pid, 'SIGHUP');
      await waitFor(() => b.log().includes('Error reconfiguring the daemon'));
      assert.equal(await labels(), '["v=1"]');
      fs.writeFileSync(cfg, JSON.stringify({ labels: ['v=2'], debug: true, 'oom-score-adjust': 0 }));
      process.kill(b.pid, 'SIGHUP');
      await waitFor(() => b.log().includes('Reloaded configuration: '));
      assert.equal(await labels(), '["v=2"]');
      assert.match(b.log(), /need a daemon restart to take effect: oom-score-adjust/);
      assert.equal((await b.docker(CLI20, ['info', '--format', '{{.Debug}}'])).stdout.trim(), 'true');
      const ev = await b.docker(CLI28, [
        'events',
        '--since',
        '0',
        '--until',
        String(Math.ceil(Date.now() / 1000) + 1),
        '--filter',
        'type=daemon',
        '--format',
        '{{.Action}}',
      ]);
      assert.equal(ev.stdout.trim(), 'reload');
    } finally {
      await b.destroy();
    }
  });

  test('tcp without TLS is refused unless --tls=false; TLS verifies client certificates', async () => {
    const port = await freePort();
    const refused = await run(process.execPath, [
      BERTHD,
      '--data-root',
      path.join(dir, 'tcp-root'),
      '--pidfile',
      path.join(dir, 'tcp.pid'),
      '--config-file',
      '/dev/null',
      '-H',
      `tcp://127.0.0.1:${port}`,
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /without TLS/);
    const plain = await Berthd.start({
      dir: path.join(dir, 'plain'),
      args: ['-H', `tcp://127.0.0.1:${port}`, '--tls=false'],
    });
    try {
      assert.match(plain.log(), /DON'T BIND ON ANY IP ADDRESS WITHOUT setting --tlsverify/);
      const v = await run(CLI28, ['-H', `tcp://127.0.0.1:${port}`, 'version', '--format', '{{.Server.APIVersion}}']);
      assert.equal(v.stdout.trim(), '1.41');
      const w = await run(CLI28, ['-H', `tcp://127.0.0.1:${port}`, 'info', '--format', '{{json .Warnings}}']);
      assert.match(w.stdout, /without encryption/);
    } finally {
      await plain.destroy();
    }
    // TLS with client verification
    const certs = path.join(dir, 'certs');
    await fsp.mkdir(certs, { recursive: true });
    const ssl = (args: string) => {
      const r = spawnSync('sh', ['-c', `openssl ${args}`], { cwd: certs, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
    };
    ssl('req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=test-ca');
    fs.writeFileSync(path.join(certs, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    ssl('req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=127.0.0.1');
    ssl(
      'x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -days 2 -extfile ext.cnf',
    );
    fs.writeFileSync(path.join(certs, 'client.cnf'), 'extendedKeyUsage=clientAuth\n');
    ssl('req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj /CN=client');
    ssl(
      'x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 2 -extfile client.cnf',
    );
    const tport = await freePort();
    const t = await Berthd.start({
      dir: path.join(dir, 'tls'),
      args: [
        '-H',
        `tcp://127.0.0.1:${tport}`,
        '--tlsverify',
        '--tlscacert',
        path.join(certs, 'ca.pem'),
        '--tlscert',
        path.join(certs, 'server-cert.pem'),
        '--tlskey',
        path.join(certs, 'server-key.pem'),
      ],
    });
    try {
      const ok = await run(
        CLI28,
        ['-H', `tcp://127.0.0.1:${tport}`, '--tlsverify', 'version', '--format', '{{.Server.APIVersion}}'],
        {
          env: { DOCKER_CERT_PATH: certs },
        },
      );
      assert.equal(ok.stdout.trim(), '1.41', ok.stderr);
      // no client certificate: the handshake is refused
      const noCert = path.join(dir, 'nocert');
      await fsp.mkdir(noCert, { recursive: true });
      await fsp.copyFile(path.join(certs, 'ca.pem'), path.join(noCert, 'ca.pem'));
      const bad = await run(
        CLI28,
        ['-H', `tcp://127.0.0.1:${tport}`, '--tlscacert', path.join(noCert, 'ca.pem'), '--tls', 'version'],
        {
          env: { DOCKER_CERT_PATH: noCert },
        },
      );
      assert.notEqual(bad.code, 0);
      assert.doesNotMatch(bad.stdout, /1\.41/);
    } finally {
      await t.destroy();
    }
  });

  test('fd:// socket activation and metrics-addr', async () => {
    const d = path.join(dir, 'fd');
    await fsp.mkdir(d, { recursive: true });
    const sock = path.join(d, 'activated.sock');
    const bindPath = path.join(d, 'bind.sock');
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(bindPath, r));
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    const mport = await freePort();
    // LISTEN_PID must be berthd's own pid: a shell sets it to $$ and execs node
    const log = path.join(d, 'wrapped.log');
    const out = fs.openSync(log, 'a');
    const { spawn } = await import('node:child_process');
    const child = spawn(
      '/bin/sh',
      [
        '-c',
        `LISTEN_PID=$$ LISTEN_FDS=1 exec "${process.execPath}" "${BERTHD}" --data-root "${path.join(d, 'root2')}" --exec-root "${path.join(d, 'exec2')}" --pidfile "${path.join(d, 'w.pid')}" --config-file /dev/null -H fd:// --metrics-addr 127.0.0.1:${mport}`,
      ],
      { stdio: ['ignore', out, out, fd] },
    );
    fs.closeSync(out);
    const exited = new Promise((r) => child.once('exit', r));
    // the test must not accept on the shared socket itself: move the socket file
    // away from the path libuv unlinks on close, then close our copy
    fs.renameSync(bindPath, sock);
    server.close();
    try {
      await waitFor(() => fs.readFileSync(log, 'utf8').includes('Daemon has completed initialization'), 20_000).catch(
        () => {
          throw new Error(`berthd (fd://) did not start:\n${fs.readFileSync(log, 'utf8')}`);
        },
      );
      const v = await run(CLI28, ['-H', `unix://${sock}`, 'version', '--format', '{{.Server.APIVersion}}']);
      assert.equal(v.stdout.trim(), '1.41', v.stderr + fs.readFileSync(log, 'utf8'));
      const metrics = await new Promise<string>((resolve, reject) => {
        http
          .get(`http://127.0.0.1:${mport}/metrics`, (res) => {
            let s = '';
            res.on('data', (c: Buffer) => {
              s += c.toString();
            });
            res.on('end', () => resolve(s));
          })
          .on('error', reject);
      });
      assert.match(metrics, /engine_daemon_engine_info\{/);
      assert.match(metrics, /engine_daemon_api_requests_total\{method="GET",route="\/version",code="200"\} \d/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
