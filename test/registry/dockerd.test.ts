// Real clients: the reference dockerd 20.10 (its own network namespace; every
// registry it talks to runs INSIDE that namespace via nsenter) pushes to and
// pulls from berth registry over the insecure HTTP path, logs in with htpasswd
// (`docker login`), and pulls a docker.io-style name through
// `--registry-mirror` pointed at a berth pull-through cache whose upstream is a
// docker-registry 2.8 (docker.io itself is unreachable in the namespace, so a
// successful pull proves the mirror served it).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { makeBusyboxRootfsTar } from '../kit/fixture-images.js';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../kit/reference-dockerd.js';
import { haveDistribution, tempDir } from './helpers.js';

const why = referenceDockerdUnavailable() ?? (haveDistribution ? undefined : 'docker-registry 2.8 not installed');
const BERTH = path.resolve('dist/src/cmd/berth.js');

function waitLine(child: ChildProcess, re: RegExp, what: string, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${buf}`)), timeoutMs);
    const on = (d: Buffer) => {
      buf += d.toString();
      if (re.test(buf)) {
        clearTimeout(timer);
        child.stdout!.resume();
        child.stderr!.resume();
        resolve();
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (c) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited ${c}: ${buf}`));
    });
  });
}

describe('reference dockerd against berth registry', { skip: why ?? false, timeout: 170_000 }, () => {
  let d: ReferenceDockerd;
  const children: ChildProcess[] = [];
  const dir = why ? '' : tempDir('dockerd-reg-');
  const roots = { plain: path.join(dir, 'plain'), auth: path.join(dir, 'auth'), proxy: path.join(dir, 'proxy') };

  const startIn = async (cmd: string, args: string[], ready: RegExp, what: string) => {
    const c = d.spawnInNetns(cmd, args);
    children.push(c);
    await waitLine(c, ready, what);
  };
  const config = (file: string, root: string, port: number, extra = '') => {
    fs.writeFileSync(
      file,
      `version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: s\n${extra}`,
    );
    return file;
  };

  before(async () => {
    d = await ReferenceDockerd.start({
      extraArgs: ['--registry-mirror', 'http://127.0.0.1:5002'],
    });
    d.runInNetns('/usr/sbin/ip', ['link', 'set', 'lo', 'up']);
    fs.writeFileSync(path.join(dir, 'htpasswd'), `alice:${bcrypt.hashSync('s3cret', 6)}\n`);
    await startIn(
      process.execPath,
      [BERTH, 'registry', 'serve', config(path.join(dir, 'plain.yml'), roots.plain, 5000)],
      /listening/,
      'berth',
    );
    await startIn(
      process.execPath,
      [
        BERTH,
        'registry',
        'serve',
        config(
          path.join(dir, 'auth.yml'),
          roots.auth,
          5001,
          `auth:\n  htpasswd:\n    realm: berth\n    path: ${path.join(dir, 'htpasswd')}\n`,
        ),
      ],
      /listening/,
      'berth (htpasswd)',
    );
    await startIn(
      '/usr/bin/docker-registry',
      ['serve', config(path.join(dir, 'up.yml'), path.join(dir, 'upstream'), 5003)],
      /listening on/,
      'docker-registry',
    );
    await startIn(
      process.execPath,
      [
        BERTH,
        'registry',
        'serve',
        config(path.join(dir, 'proxy.yml'), roots.proxy, 5002, 'proxy:\n  remoteurl: http://127.0.0.1:5003\n'),
      ],
      /listening/,
      'berth (proxy)',
    );
    const tar = await makeBusyboxRootfsTar(dir);
    await d.dockerOk(['import', tar, 'bbase:1']);
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await d?.destroy();
  });

  const imageId = async (ref: string) => (await d.dockerOk(['image', 'inspect', '-f', '{{.Id}}', ref])).trim();

  test('docker push / rmi / pull over the insecure HTTP path', async () => {
    const id = await imageId('bbase:1');
    await d.dockerOk(['tag', 'bbase:1', '127.0.0.1:5000/team/bbase:1']);
    const push = await d.dockerOk(['push', '127.0.0.1:5000/team/bbase:1']);
    assert.match(push, /1: digest: sha256:[0-9a-f]{64} size: \d+/);
    const tagLink = path.join(roots.plain, 'docker/registry/v2/repositories/team/bbase/_manifests/tags/1/current/link');
    assert.ok(fs.existsSync(tagLink));
    await d.dockerOk(['rmi', '127.0.0.1:5000/team/bbase:1']);
    await d.dockerOk(['rmi', 'bbase:1']);
    await d.dockerOk(['pull', '127.0.0.1:5000/team/bbase:1']);
    assert.equal(await imageId('127.0.0.1:5000/team/bbase:1'), id);
    await d.dockerOk(['tag', '127.0.0.1:5000/team/bbase:1', 'bbase:1']);
    // a second push finds every layer already there
    const again = await d.dockerOk(['push', '127.0.0.1:5000/team/bbase:1']);
    assert.match(again, /Layer already exists/);
  });

  test('docker login (htpasswd) then push and pull; without login the pull is refused', async () => {
    const bad = await d.docker(['login', '127.0.0.1:5001', '-u', 'alice', '--password-stdin'], { input: 'wrong\n' });
    assert.notEqual(bad.code, 0);
    const login = await d.dockerOk(['login', '127.0.0.1:5001', '-u', 'alice', '--password-stdin'], {
      input: 's3cret\n',
    });
    assert.match(login, /Login Succeeded/);
    await d.dockerOk(['tag', 'bbase:1', '127.0.0.1:5001/private/bbase:1']);
    await d.dockerOk(['push', '127.0.0.1:5001/private/bbase:1']);
    await d.dockerOk(['rmi', '127.0.0.1:5001/private/bbase:1']);
    await d.dockerOk(['logout', '127.0.0.1:5001']);
    const denied = await d.docker(['pull', '127.0.0.1:5001/private/bbase:1']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /unauthorized|no basic auth credentials|authentication required/i);
    await d.dockerOk(['login', '127.0.0.1:5001', '-u', 'alice', '--password-stdin'], { input: 's3cret\n' });
    await d.dockerOk(['pull', '127.0.0.1:5001/private/bbase:1']);
  });

  test('registry-mirrors: a docker.io name pulled through berth’s pull-through cache', async () => {
    await d.dockerOk(['tag', 'bbase:1', '127.0.0.1:5003/library/mirrored:v1']);
    await d.dockerOk(['push', '127.0.0.1:5003/library/mirrored:v1']);
    const id = await imageId('bbase:1');
    await d.dockerOk(['rmi', '127.0.0.1:5003/library/mirrored:v1']);
    const pull = await d.dockerOk(['pull', 'mirrored:v1']);
    assert.match(pull, /Downloaded newer image for mirrored:v1|Image is up to date/);
    assert.equal(await imageId('mirrored:v1'), id);
    // the cache holds it now
    const cached = path.join(
      roots.proxy,
      'docker/registry/v2/repositories/library/mirrored/_manifests/tags/v1/current/link',
    );
    assert.ok(fs.existsSync(cached), 'the proxy cached the tag');
    // and a push through the mirror endpoint is refused
    await d.dockerOk(['tag', 'bbase:1', '127.0.0.1:5002/library/nope:v1']);
    const push = await d.docker(['push', '127.0.0.1:5002/library/nope:v1']);
    assert.notEqual(push.code, 0);
  });
});
