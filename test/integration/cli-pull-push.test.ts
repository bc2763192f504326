// docker pull / push / login through berthd with the real docker CLIs (28.x and
// 20.10), against Debian's docker-registry (distribution 2.8) and berth's own
// registry on 127.0.0.1, with and without htpasswd auth.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { makeBusyboxRootfsTar } from '../kit/fixture-images.js';
import { haveDistribution, startBerth, startDistribution, type Target, tempDir } from '../registry/helpers.js';
import { Berthd, CLI20, CLI28, cliUnavailable } from './cli-kit.js';

const why = cliUnavailable() ?? (haveDistribution ? undefined : 'docker-registry is not installed');

describe('docker pull/push/login through berthd', { skip: why ?? false, timeout: 240_000 }, () => {
  let d: Berthd;
  let dist: Target;
  let own: Target;
  let authed: Target;
  let baseTar: string;
  const work = tempDir('cli-pull-push-');

  before(async () => {
    d = await Berthd.start();
    dist = await startDistribution();
    own = await startBerth();
    const htpasswd = path.join(work, 'htpasswd');
    fs.writeFileSync(htpasswd, `alice:${bcrypt.hashSync('s3cret', 5)}\n`);
    authed = await startDistribution({
      extraYaml: ['auth:', '  htpasswd:', '    realm: berth-test', `    path: ${htpasswd}`],
    });
    baseTar = await makeBusyboxRootfsTar(work);
  });
  after(async () => {
    await d?.destroy();
    await dist?.close();
    await own?.close();
    await authed?.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  for (const [cli, label] of [
    [CLI28, '28.x'],
    [CLI20, '20.10'],
  ] as const) {
    test(`CLI ${label}: push to docker-registry and berth registry, rmi, pull back the same image`, async () => {
      const imp = await d.docker(cli, ['import', baseTar, `bb-${label}:1`]);
      assert.equal(imp.code, 0, imp.stderr);
      const id = imp.stdout.trim();
      for (const reg of [dist, own]) {
        const host = new URL(reg.url).host;
        const name = `${host}/team/bb-${label.replace('.', '')}:v1`;
        assert.equal((await d.docker(cli, ['tag', id, name])).code, 0);
        const push = await d.docker(cli, ['push', name], { timeoutMs: 60_000 });
        assert.equal(push.code, 0, push.stderr);
        const m = /v1: digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(push.stdout);
        assert.ok(m, `push output: ${push.stdout}`);
        // pushing again: every layer already exists
        const again = await d.docker(cli, ['push', name]);
        assert.match(again.stdout, /Layer already exists/);
        assert.equal((await d.docker(cli, ['rmi', name])).code, 0);
        const pull = await d.docker(cli, ['pull', name], { timeoutMs: 60_000 });
        assert.equal(pull.code, 0, pull.stderr);
        assert.match(pull.stdout, new RegExp(`Digest: ${m[1]}`));
        assert.match(pull.stdout, /Status: (Downloaded newer image|Image is up to date) for /);
        const ins = await d.docker(cli, ['image', 'inspect', '--format', '{{.Id}} {{json .RepoDigests}}', name]);
        assert.equal(ins.stdout.split(' ')[0], id);
        assert.ok(ins.stdout.includes(`@${m[1]}`), ins.stdout);
        // GET /distribution/{name}/json: what the name resolves to, without pulling
        const di = await d.request('GET', `/v1.41/distribution/${name}/json`);
        assert.equal(di.status, 200, di.body);
        const inspect = JSON.parse(di.body) as { Descriptor: { digest: string; size: number }; Platforms: unknown[] };
        assert.equal(inspect.Descriptor.digest, m[1]);
        assert.equal(inspect.Descriptor.size, Number(m[2]));
        assert.deepEqual(inspect.Platforms, [{ architecture: 'amd64', os: 'linux' }]);
        // pull by digest
        const byDigest = await d.docker(cli, ['pull', `${host}/team/bb-${label.replace('.', '')}@${m[1]}`]);
        assert.equal(byDigest.code, 0, byDigest.stderr);
      }
    });
  }

  test('errors as dockerd words them: unknown tag, unreachable registry', async () => {
    const host = new URL(dist.url).host;
    const missing = await d.docker(CLI28, ['pull', `${host}/nope/nothing:v9`]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /manifest for .*nothing:v9 not found|not found/);
    const down = await d.docker(CLI28, ['pull', '127.0.0.1:1/x/y:z']);
    assert.notEqual(down.code, 0);
    assert.match(down.stderr, /connection refused/);
  });

  test('docker login against htpasswd, then push needs and uses the credentials', async () => {
    const host = new URL(authed.url).host;
    const bad = await d.docker(CLI28, ['login', host, '-u', 'alice', '--password-stdin'], { input: 'wrong\n' });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unauthorized|401/i);
    const ok = await d.docker(CLI28, ['login', host, '-u', 'alice', '--password-stdin'], { input: 's3cret\n' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Login Succeeded/);
    const imp = await d.docker(CLI28, ['import', baseTar, `${host}/private/bb:1`]);
    assert.equal(imp.code, 0, imp.stderr);
    const push = await d.docker(CLI28, ['push', `${host}/private/bb:1`], { timeoutMs: 60_000 });
    assert.equal(push.code, 0, push.stderr);
    assert.equal((await d.docker(CLI28, ['logout', host])).code, 0);
    const anon = await d.docker(CLI28, ['pull', `${host}/private/bb:1`]);
    assert.notEqual(anon.code, 0);
    assert.match(anon.stderr, /unauthorized|authentication required|no basic auth/i);
  });
});
