// Auth: htpasswd Basic (bcrypt) with and without anonymous read, and token
// auth against a tiny token server written here (ES256 JWTs with an x5c chain
// to a root CA, or RS256 with a libtrust `kid`), through raw HTTP and through
// skopeo (a real client doing the challenge dance). Plus metrics and health.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, type KeyObject, sign, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { libtrustKeyId } from '../../src/registry/auth/token.js';
import { haveSkopeo, pushSimpleImage, req, sha256, skopeoAsync, startBerth, type Target, tempDir } from './helpers.js';

const basic = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

function htpasswdFile(users: Record<string, string>): string {
  const dir = tempDir('htpasswd-');
  const f = path.join(dir, 'htpasswd');
  fs.writeFileSync(
    f,
    `${Object.entries(users)
      .map(([u, p]) => `${u}:${bcrypt.hashSync(p, 5)}`)
      .join('\n')}\n`,
  );
  return f;
}

/** An OCI layout with one image, for skopeo to copy from. */
function ociLayout(): string {
  const dir = tempDir('layout-');
  const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const layer = Buffer.from('not really a tar but skopeo does not care');
  const m = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(cfg), size: cfg.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  fs.mkdirSync(path.join(dir, 'blobs/sha256'), { recursive: true });
  for (const b of [cfg, layer, m]) fs.writeFileSync(path.join(dir, 'blobs/sha256', sha256(b).slice(7)), b);
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: sha256(m),
          size: m.length,
          annotations: { 'org.opencontainers.image.ref.name': 'v1' },
        },
      ],
    }),
  );
  return dir;
}

describe('htpasswd', () => {
  let t: Target;
  let anon: Target;
  before(async () => {
    const file = htpasswdFile({ alice: 's3cret', bob: 'hunter2' });
    t = await startBerth({ extra: { auth: { htpasswd: { realm: 'berth-test', path: file } } } });
    anon = await startBerth({
      extra: { auth: { htpasswd: { realm: 'berth-test', path: file, anonymousread: true } } },
    });
  });
  after(async () => {
    await t?.close();
    await anon?.close();
  });

  test('no credentials → 401 UNAUTHORIZED with a Basic challenge', async () => {
    const r = await req('GET', `${t.url}/v2/`);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Basic realm="berth-test"');
    assert.equal(r.json().errors[0].code, 'UNAUTHORIZED');
    assert.equal((await req('GET', `${t.url}/v2/x/tags/list`)).status, 401);
    assert.equal((await req('GET', `${t.url}/debug/health`)).status, 200, 'health needs no credentials');
  });

  test('wrong password or unknown user → 401; the right one → 200 (and cached verification)', async () => {
    assert.equal((await req('GET', `${t.url}/v2/`, { headers: basic('alice', 'nope') })).status, 401);
    assert.equal((await req('GET', `${t.url}/v2/`, { headers: basic('mallory', 's3cret') })).status, 401);
    for (let i = 0; i < 3; i++)
      assert.equal((await req('GET', `${t.url}/v2/`, { headers: basic('alice', 's3cret') })).status, 200);
  });

  test('push and pull with credentials', async () => {
    const img = await pushSimpleImage(t.url, 'team/app', 'v1', 'hello', basic('bob', 'hunter2'));
    const r = await req('GET', `${t.url}/v2/team/app/manifests/v1`, { headers: basic('alice', 's3cret') });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('docker-content-digest'), img.digest);
    assert.equal((await req('GET', `${t.url}/v2/team/app/manifests/v1`)).status, 401);
  });

  test('anonymousread: pulls without credentials, pushes and /v2/ still challenge', async () => {
    const img = await pushSimpleImage(anon.url, 'pub/app', 'v1', 'public', basic('alice', 's3cret'));
    const m = await req('GET', `${anon.url}/v2/pub/app/manifests/v1`);
    assert.equal(m.status, 200);
    assert.equal(m.headers.get('docker-content-digest'), img.digest);
    assert.equal((await req('GET', `${anon.url}/v2/pub/app/blobs/${sha256(img.layer)}`)).status, 200);
    assert.equal((await req('GET', `${anon.url}/v2/pub/app/tags/list`)).status, 200);
    const post = await req('POST', `${anon.url}/v2/pub/app/blobs/uploads/`);
    assert.equal(post.status, 401);
    assert.equal(post.headers.get('www-authenticate'), 'Basic realm="berth-test"');
    assert.equal((await req('GET', `${anon.url}/v2/`)).status, 401, 'clients learn the scheme from /v2/');
    assert.equal((await req('DELETE', `${anon.url}/v2/pub/app/manifests/${img.digest}`)).status, 401);
  });

  test('skopeo copy with --dest-creds / --src-creds (a real client)', { skip: !haveSkopeo }, async () => {
    const layout = ociLayout();
    const host = t.url.replace('http://', '');
    const push = await skopeoAsync([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      'alice:s3cret',
      `oci:${layout}:v1`,
      `docker://${host}/sk/app:v1`,
    ]);
    assert.equal(push.code, 0, push.stderr);
    const denied = await skopeoAsync([
      'copy',
      '--src-tls-verify=false',
      `docker://${host}/sk/app:v1`,
      `oci:${tempDir('o-')}:x`,
    ]);
    assert.notEqual(denied.code, 0);
    const pull = await skopeoAsync([
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      'bob:hunter2',
      `docker://${host}/sk/app:v1`,
      `oci:${tempDir('o-')}:x`,
    ]);
    assert.equal(pull.code, 0, pull.stderr);
  });
});

// ---- a tiny token server ----

interface Pki {
  rootCert: string;
  rootKey: KeyObject;
  leafCert: X509Certificate;
  leafKey: KeyObject;
  otherLeafCert: X509Certificate;
  otherLeafKey: KeyObject;
  bundle: string;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

function makePki(): Pki | undefined {
  const dir = tempDir('pki-');
  try {
    // root CA (RSA, so `kid` tokens can be RS256), an ES256 leaf it signs, and a leaf of an untrusted CA
    openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'root.key',
        '-out',
        'root.pem',
        '-days',
        '2',
        '-subj',
        '/CN=berth test root',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign',
      ],
      dir,
    );
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'leaf.key'], dir);
    openssl(['req', '-new', '-key', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=token signer'], dir);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        'leaf.csr',
        '-CA',
        'root.pem',
        '-CAkey',
        'root.key',
        '-CAcreateserial',
        '-out',
        'leaf.pem',
        '-days',
        '1',
      ],
      dir,
    );
    openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'evil.key',
        '-out',
        'evil.pem',
        '-days',
        '2',
        '-subj',
        '/CN=evil root',
      ],
      dir,
    );
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'eleaf.key'], dir);
    openssl(['req', '-new', '-key', 'eleaf.key', '-out', 'eleaf.csr', '-subj', '/CN=evil signer'], dir);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        'eleaf.csr',
        '-CA',
        'evil.pem',
        '-CAkey',
        'evil.key',
        '-CAcreateserial',
        '-out',
        'eleaf.pem',
        '-days',
        '1',
      ],
      dir,
    );
  } catch {
    return undefined;
  }
  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  return {
    rootCert: read('root.pem'),
    rootKey: createPrivateKey(read('root.key')),
    leafCert: new X509Certificate(read('leaf.pem')),
    leafKey: createPrivateKey(read('leaf.key')),
    otherLeafCert: new X509Certificate(read('eleaf.pem')),
    otherLeafKey: createPrivateKey(read('eleaf.key')),
    bundle: path.join(dir, 'root.pem'),
  };
}

const b64u = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function jwt(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  key: KeyObject,
  alg: 'ES256' | 'RS256' = 'ES256',
): string {
  const input = `${b64u({ typ: 'JWT', alg, ...header })}.${b64u(claims)}`;
  const sig = sign('sha256', Buffer.from(input), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${input}.${sig.toString('base64url')}`;
}

const x5c = (c: X509Certificate) => [c.raw.toString('base64')];

describe('token auth', () => {
  const pki = makePki();
  let t: Target;
  let issuer: http.Server;
  let realm = '';
  const SERVICE = 'berth-registry';
  const ISSUER = 'berth-test-issuer';
  const now = () => Math.floor(Date.now() / 1000);
  const claims = (access: unknown[], extra: Record<string, unknown> = {}) => ({
    iss: ISSUER,
    sub: 'alice',
    aud: SERVICE,
    exp: now() + 300,
    nbf: now() - 10,
    iat: now(),
    jti: String(Math.random()),
    access,
    ...extra,
  });
  const tokenFor = (access: unknown[], extra: Record<string, unknown> = {}) =>
    jwt({ x5c: x5c(pki!.leafCert) }, claims(access, extra), pki!.leafKey);
  const bearer = (tok: string) => ({ Authorization: `Bearer ${tok}` });
  const pullPush = (name: string) => [{ type: 'repository', name, actions: ['pull', 'push'] }];

  before(async () => {
    if (!pki) return;
    // The token server: alice:pw gets what she asks for; anonymous gets pull only.
    issuer = http.createServer((q, s) => {
      const u = new URL(q.url ?? '/', 'http://x');
      const authed = q.headers.authorization === basic('alice', 'pw').Authorization;
      const access = u.searchParams
        .getAll('scope')
        .flatMap((sc) => sc.split(' '))
        .filter(Boolean)
        .map((sc) => {
          const [type, ...rest] = sc.split(':');
          const actions = rest.pop()!.split(',');
          return { type, name: rest.join(':'), actions: authed ? actions : actions.filter((a) => a === 'pull') };
        });
      if (q.headers.authorization && !authed) {
        s.statusCode = 401;
        return s.end();
      }
      s.setHeader('Content-Type', 'application/json');
      s.end(JSON.stringify({ token: tokenFor(access), expires_in: 300 }));
    });
    await new Promise<void>((r) => issuer.listen(0, '127.0.0.1', r));
    realm = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}/token`;
    t = await startBerth({
      extra: { auth: { token: { realm, service: SERVICE, issuer: ISSUER, rootcertbundle: pki.bundle } } },
    });
  });
  after(async () => {
    await t?.close();
    issuer?.close();
  });

  test('no token → 401 with the Bearer challenge naming realm, service and scope', { skip: !pki }, async () => {
    const r = await req('GET', `${t.url}/v2/team/app/manifests/v1`);
    assert.equal(r.status, 401);
    assert.equal(
      r.headers.get('www-authenticate'),
      `Bearer realm="${realm}",service="${SERVICE}",scope="repository:team/app:pull"`,
    );
    const up = await req('POST', `${t.url}/v2/team/app/blobs/uploads/`);
    assert.match(up.headers.get('www-authenticate')!, /scope="repository:team\/app:pull,push"$/);
    const base = await req('GET', `${t.url}/v2/`);
    assert.equal(base.headers.get('www-authenticate'), `Bearer realm="${realm}",service="${SERVICE}"`);
  });

  test('a valid x5c-chained ES256 token with pull,push pushes; pull-only gets insufficient_scope', {
    skip: !pki,
  }, async () => {
    const img = await pushSimpleImage(t.url, 'team/app', 'v1', 'tok', bearer(tokenFor(pullPush('team/app'))));
    const pullOnly = bearer(tokenFor([{ type: 'repository', name: 'team/app', actions: ['pull'] }]));
    const m = await req('GET', `${t.url}/v2/team/app/manifests/v1`, { headers: pullOnly });
    assert.equal(m.status, 200);
    assert.equal(m.headers.get('docker-content-digest'), img.digest);
    const post = await req('POST', `${t.url}/v2/team/app/blobs/uploads/`, { headers: pullOnly });
    assert.equal(post.status, 401);
    assert.equal(
      post.headers.get('www-authenticate'),
      `Bearer realm="${realm}",service="${SERVICE}",scope="repository:team/app:pull,push",error="insufficient_scope"`,
    );
    // a token for another repository does not open this one
    const other = bearer(tokenFor(pullPush('team/other')));
    assert.equal((await req('GET', `${t.url}/v2/team/app/manifests/v1`, { headers: other })).status, 401);
    // the catalog needs registry:catalog:*
    assert.equal((await req('GET', `${t.url}/v2/_catalog`, { headers: pullOnly })).status, 401);
    const cat = bearer(tokenFor([{ type: 'registry', name: 'catalog', actions: ['*'] }]));
    assert.equal((await req('GET', `${t.url}/v2/_catalog`, { headers: cat })).status, 200);
  });

  test('invalid tokens → 401 invalid_token', { skip: !pki }, async () => {
    const acc = pullPush('team/app');
    const bad: Array<[string, string]> = [
      ['expired', tokenFor(acc, { exp: now() - 3600 })],
      ['not yet valid', tokenFor(acc, { nbf: now() + 3600 })],
      ['wrong issuer', tokenFor(acc, { iss: 'someone-else' })],
      ['wrong audience', tokenFor(acc, { aud: 'other-service' })],
      ['untrusted chain', jwt({ x5c: x5c(pki!.otherLeafCert) }, claims(acc), pki!.otherLeafKey)],
      ['alg none', `${b64u({ alg: 'none', x5c: x5c(pki!.leafCert) })}.${b64u(claims(acc))}.`],
      [
        'tampered claims',
        (() => {
          const [h, , sgn] = tokenFor([]).split('.');
          return `${h}.${b64u(claims(acc))}.${sgn}`;
        })(),
      ],
      ['signed by another key under a trusted x5c', jwt({ x5c: x5c(pki!.leafCert) }, claims(acc), pki!.otherLeafKey)],
      ['garbage', 'abc.def'],
    ];
    for (const [why, tok] of bad) {
      const r = await req('GET', `${t.url}/v2/team/app/tags/list`, { headers: bearer(tok) });
      assert.equal(r.status, 401, why);
      assert.match(r.headers.get('www-authenticate')!, /error="invalid_token"/, why);
    }
  });

  test('a kid naming the root key (libtrust key ID), RS256', { skip: !pki }, async () => {
    const kid = libtrustKeyId(new X509Certificate(pki!.rootCert).publicKey);
    assert.match(kid, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    const tok = jwt({ kid }, claims(pullPush('team/app')), pki!.rootKey, 'RS256');
    assert.equal((await req('GET', `${t.url}/v2/team/app/tags/list`, { headers: bearer(tok) })).status, 200);
    const unknown = jwt({ kid: 'AAAA:BBBB' }, claims(pullPush('team/app')), pki!.rootKey, 'RS256');
    assert.equal((await req('GET', `${t.url}/v2/team/app/tags/list`, { headers: bearer(unknown) })).status, 401);
  });

  test('skopeo does the whole dance: challenge → token server → push; anonymous pull', {
    skip: !pki || !haveSkopeo,
  }, async () => {
    const host = t.url.replace('http://', '');
    const push = await skopeoAsync([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      'alice:pw',
      `oci:${ociLayout()}:v1`,
      `docker://${host}/sk/tok:v1`,
    ]);
    assert.equal(push.code, 0, push.stderr);
    const pull = await skopeoAsync([
      'copy',
      '--src-tls-verify=false',
      `docker://${host}/sk/tok:v1`,
      `oci:${tempDir('o-')}:x`,
    ]);
    assert.equal(pull.code, 0, pull.stderr);
    const anonPush = await skopeoAsync([
      'copy',
      '--dest-tls-verify=false',
      `oci:${ociLayout()}:v1`,
      `docker://${host}/sk/tok:v2`,
    ]);
    assert.notEqual(anonPush.code, 0, 'an anonymous token has pull only');
  });
});

describe('metrics, health, access log', () => {
  test('http.debug.addr serves /metrics and /debug/health; the access log has one line per request', async () => {
    const lines: string[] = [];
    const t = await startBerth({ http: { debug: { addr: '127.0.0.1:0' } }, accessLog: (l) => lines.push(l) });
    try {
      assert.ok(t.debugUrl);
      const img = await pushSimpleImage(t.url, 'm/app', 'v1', 'metrics');
      for (let i = 0; i < 3; i++) assert.equal((await req('GET', `${t.url}/v2/m/app/manifests/v1`)).status, 200);
      assert.equal((await req('GET', `${t.url}/v2/m/app/blobs/${sha256(img.layer)}`)).status, 200);
      assert.equal((await req('GET', `${t.url}/v2/m/app/manifests/nope`)).status, 404);
      const text = (await req('GET', `${t.debugUrl}/metrics`)).body.toString();
      assert.match(text, /registry_http_requests_total\{method="GET",route="manifest",code="200"\} 3/);
      assert.match(text, /registry_http_requests_total\{method="GET",route="manifest",code="404"\} 1/);
      assert.match(text, /registry_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="manifest"\}/);
      assert.match(text, /registry_uploads_total\{result="completed"\} 2/);
      assert.match(text, new RegExp(`registry_http_response_bytes_total\\{route="blob"\\} ${img.layer.length}`));
      assert.match(text, /registry_storage_action_seconds_count\{driver="filesystem",action="GetContent"\} \d+/);
      assert.match(text, /process_resident_memory_bytes \d+/);
      const h = await req('GET', `${t.debugUrl}/debug/health`);
      assert.equal(h.status, 200);
      assert.deepEqual(h.json(), {});
      assert.equal((await req('GET', `${t.url}/debug/health`)).status, 200);
      const gc = await req('POST', `${t.debugUrl}/debug/gc?dryrun=1`);
      assert.equal(gc.status, 200);
      assert.equal(gc.json().dryRun, true);
      assert.ok(lines.some((l) => /"GET \/v2\/m\/app\/manifests\/v1 HTTP\/1.1" 200 \d+/.test(l)));
    } finally {
      await t.close();
    }
  });

  test('health is 503 naming the driver when the storage fails', async () => {
    const root = tempDir('health-');
    const t = await startBerth({ root: path.join(root, 'r') });
    try {
      fs.mkdirSync(path.join(root, 'r'), { recursive: true });
      fs.chmodSync(path.join(root, 'r'), 0o000);
      // root bypasses permissions; make the root a file instead (ENOTDIR is "not found"), so use a loop
      fs.chmodSync(path.join(root, 'r'), 0o755);
      fs.rmSync(path.join(root, 'r'), { recursive: true });
      fs.symlinkSync('loop', path.join(root, 'loop'));
      fs.symlinkSync('loop', path.join(root, 'r'));
      const r = await req('GET', `${t.url}/debug/health`);
      assert.equal(r.status, 503);
      assert.ok('storagedriver_filesystem' in r.json());
    } finally {
      await t.close();
    }
  });
});
