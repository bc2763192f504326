// The pull-through cache against an upstream docker-registry 2.8 on loopback:
// pulls through the cache, caching on disk; concurrent pulls of one blob make
// one upstream fetch; tags revalidated (a retag upstream is seen); the cache
// serves when the upstream is down; pushes are refused; TTL expiry persisted
// in scheduler-state.json; an authenticated upstream (htpasswd).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import bcrypt from 'bcryptjs';
import {
  haveDistribution,
  pushSimpleImage,
  req,
  sha256,
  startBerth,
  startDistribution,
  type Target,
  tempDir,
} from './helpers.js';

const skip = haveDistribution ? false : 'docker-registry 2.8 not installed';

const blobPath = (root: string, d: string) =>
  path.join(root, 'docker/registry/v2/blobs/sha256', d.slice(7, 9), d.slice(7), 'data');

async function proxyOf(up: Target, extra: Record<string, unknown> = {}, root?: string) {
  return startBerth({
    ...(root ? { root } : {}),
    extra: { proxy: { remoteurl: up.url, ...extra } },
    http: { debug: { addr: '127.0.0.1:0' } },
  });
}

async function metric(t: Target, re: RegExp): Promise<number> {
  const text = (await req('GET', `${t.debugUrl}/metrics`)).body.toString();
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}

test('pull through the cache: manifest by tag and digest, blobs, cached on disk, pushes refused', {
  skip,
  timeout: 60_000,
}, async () => {
  const up = await startDistribution();
  const px = await proxyOf(up);
  try {
    const img = await pushSimpleImage(up.url, 'library/app', 'v1', randomBytes(300_000));
    const m = await req('GET', `${px.url}/v2/library/app/manifests/v1`, {
      headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(m.status, 200, m.body.toString());
    assert.equal(m.headers.get('docker-content-digest'), img.digest);
    assert.deepEqual(m.body, img.manifest);
    for (const b of [img.config, img.layer]) {
      const h = await req('HEAD', `${px.url}/v2/library/app/blobs/${sha256(b)}`);
      assert.equal(h.status, 200);
      assert.equal(h.headers.get('content-length'), String(b.length));
      const r = await req('GET', `${px.url}/v2/library/app/blobs/${sha256(b)}`);
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), sha256(b));
      assert.ok(fs.existsSync(blobPath(px.root, sha256(b))), 'cached on disk');
    }
    // by digest, and a second GET served locally (a hit)
    assert.equal((await req('GET', `${px.url}/v2/library/app/manifests/${img.digest}`)).status, 200);
    const before = await metric(px, /registry_proxy_requests_total\{kind="blob",result="miss"\} (\d+)/);
    assert.equal((await req('GET', `${px.url}/v2/library/app/blobs/${sha256(img.layer)}`)).status, 200);
    assert.equal(await metric(px, /registry_proxy_requests_total\{kind="blob",result="miss"\} (\d+)/), before);
    // a Range request on a cached blob
    const rg = await req('GET', `${px.url}/v2/library/app/blobs/${sha256(img.layer)}`, {
      headers: { Range: 'bytes=10-19' },
    });
    assert.equal(rg.status, 206);
    assert.deepEqual(rg.body, img.layer.subarray(10, 20));
    // tags/list comes from the upstream
    assert.deepEqual((await req('GET', `${px.url}/v2/library/app/tags/list`)).json().tags, ['v1']);
    // pushes and deletes are refused
    const post = await req('POST', `${px.url}/v2/library/app/blobs/uploads/`);
    assert.equal(post.status, 405);
    assert.equal(post.json().errors[0].code, 'UNSUPPORTED');
    assert.equal((await req('DELETE', `${px.url}/v2/library/app/manifests/${img.digest}`)).status, 405);
    // unknown upstream content
    assert.equal((await req('GET', `${px.url}/v2/library/app/manifests/nope`)).status, 404);
    assert.equal((await req('GET', `${px.url}/v2/library/app/blobs/sha256:${'0'.repeat(64)}`)).status, 404);
  } finally {
    await px.close();
    await up.close();
  }
});

test('concurrent pulls of one uncached blob: one upstream fetch, every client gets the right bytes', {
  skip,
  timeout: 60_000,
}, async () => {
  const up = await startDistribution();
  const px = await proxyOf(up);
  try {
    const img = await pushSimpleImage(up.url, 'big/app', 'v1', randomBytes(12 * 1024 * 1024));
    const d = sha256(img.layer);
    const rs = await Promise.all(Array.from({ length: 6 }, () => req('GET', `${px.url}/v2/big/app/blobs/${d}`)));
    for (const r of rs) {
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), d);
    }
    const pulled = await metric(px, /registry_proxy_pulled_bytes_total\{kind="blob"\} (\d+)/);
    assert.equal(pulled, img.layer.length, 'the blob was fetched from the upstream exactly once');
    // nothing left in _uploads
    const uploads = path.join(px.root, 'docker/registry/v2/repositories/big/app/_uploads');
    assert.deepEqual(fs.existsSync(uploads) ? fs.readdirSync(uploads) : [], []);
  } finally {
    await px.close();
    await up.close();
  }
});

test('tags are revalidated upstream; when the upstream is down the cache still serves', {
  skip,
  timeout: 60_000,
}, async () => {
  const upRoot = tempDir('up-');
  let up = await startDistribution({ root: upRoot });
  const px = await proxyOf(up);
  try {
    const v1 = await pushSimpleImage(up.url, 'library/app', 'latest', 'first');
    const m1 = await req('GET', `${px.url}/v2/library/app/manifests/latest`);
    assert.equal(m1.headers.get('docker-content-digest'), v1.digest);
    await req('GET', `${px.url}/v2/library/app/blobs/${sha256(v1.layer)}`);
    const v2 = await pushSimpleImage(up.url, 'library/app', 'latest', 'second');
    const m2 = await req('GET', `${px.url}/v2/library/app/manifests/latest`);
    assert.equal(m2.headers.get('docker-content-digest'), v2.digest, 'a retag upstream is seen at once');
    await req('GET', `${px.url}/v2/library/app/blobs/${sha256(v2.layer)}`);
    await up.close();
    // upstream unreachable: the cached tag (stale) and cached blobs are served
    const stale = await req('GET', `${px.url}/v2/library/app/manifests/latest`);
    assert.equal(stale.status, 200);
    assert.equal(stale.headers.get('docker-content-digest'), v2.digest);
    const blob = await req('GET', `${px.url}/v2/library/app/blobs/${sha256(v2.layer)}`);
    assert.equal(blob.status, 200);
    assert.equal(await metric(px, /registry_proxy_requests_total\{kind="manifest",result="stale"\} (\d+)/), 1);
    // never cached and no upstream: 503 UNAVAILABLE, not a hang
    const miss = await req('GET', `${px.url}/v2/library/other/manifests/latest`);
    assert.equal(miss.status, 503);
    assert.equal(miss.json().errors[0].code, 'UNAVAILABLE');
    // cached tags/list when the upstream is down
    assert.deepEqual((await req('GET', `${px.url}/v2/library/app/tags/list`)).json().tags, ['latest']);
    up = await startDistribution({ root: upRoot });
  } finally {
    await px.close();
    await up.close();
  }
});

test('TTL: cached content expires, and the schedule survives a restart in scheduler-state.json', {
  skip,
  timeout: 60_000,
}, async () => {
  const up = await startDistribution();
  const root = tempDir('px-ttl-');
  let px = await proxyOf(up, { ttl: '3s' }, root);
  try {
    const img = await pushSimpleImage(up.url, 'ttl/app', 'v1', 'expiring');
    assert.equal((await req('GET', `${px.url}/v2/ttl/app/manifests/v1`)).status, 200);
    assert.equal((await req('GET', `${px.url}/v2/ttl/app/blobs/${sha256(img.layer)}`)).status, 200);
    await px.close(); // saves the schedule
    const state = JSON.parse(fs.readFileSync(path.join(root, 'scheduler-state.json'), 'utf8'));
    const keys = Object.keys(state).sort();
    assert.deepEqual(keys, [`ttl/app@${img.digest}`, `ttl/app@${sha256(img.layer)}`].sort());
    const entry = state[`ttl/app@${img.digest}`];
    assert.equal(entry.EntryType, 1);
    assert.equal(entry.Key, `ttl/app@${img.digest}`);
    assert.ok(!Number.isNaN(Date.parse(entry.ExpiryData)));
    assert.equal(state[`ttl/app@${sha256(img.layer)}`].EntryType, 0);
    px = await proxyOf(up, { ttl: '3s' }, root); // resumes the schedule
    const revision = path.join(
      root,
      'docker/registry/v2/repositories/ttl/app/_manifests/revisions/sha256',
      img.digest.slice(7),
      'link',
    );
    const deadline = Date.now() + 15_000;
    while ((fs.existsSync(revision) || fs.existsSync(blobPath(root, sha256(img.layer)))) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 250));
    assert.equal(fs.existsSync(revision), false, 'the manifest expired');
    assert.equal(fs.existsSync(blobPath(root, sha256(img.layer))), false, 'the blob expired');
    // and is fetched again on demand
    assert.equal((await req('GET', `${px.url}/v2/ttl/app/manifests/v1`)).status, 200);
  } finally {
    await px.close();
    await up.close();
  }
});

test('an upstream behind htpasswd: proxy.username/password', { skip, timeout: 60_000 }, async () => {
  const dir = tempDir('up-auth-');
  const file = path.join(dir, 'htpasswd');
  fs.writeFileSync(file, `mirror:${bcrypt.hashSync('pw', 5).replace(/^\$2b\$/, '$2y$')}\n`);
  const up = await startDistribution({
    extraYaml: ['auth:', '  htpasswd:', '    realm: upstream', `    path: ${file}`],
  });
  const creds = { Authorization: `Basic ${Buffer.from('mirror:pw').toString('base64')}` };
  const denied = await proxyOf(up);
  const px = await proxyOf(up, { username: 'mirror', password: 'pw' });
  try {
    const img = await pushSimpleImage(up.url, 'private/app', 'v1', 'secret stuff', creds);
    const m = await req('GET', `${px.url}/v2/private/app/manifests/v1`);
    assert.equal(m.status, 200, m.body.toString());
    assert.equal(m.headers.get('docker-content-digest'), img.digest);
    const b = await req('GET', `${px.url}/v2/private/app/blobs/${sha256(img.layer)}`);
    assert.equal(sha256(b.body), sha256(img.layer));
    assert.notEqual((await req('GET', `${denied.url}/v2/private/app/manifests/v1`)).status, 200);
  } finally {
    await px.close();
    await denied.close();
    await up.close();
  }
});
