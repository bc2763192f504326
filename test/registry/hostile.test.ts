// Hostile and malformed input against berth registry: each request gets the
// spec's error (code and status) and leaves the store exactly as it was.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { purgeUploads } from '../../src/registry/storage/catalog.js';
import { FilesystemDriver } from '../../src/registry/storage/filesystem.js';
import {
  configBlob,
  desc,
  gzipTar,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_LAYER_GZIP,
  OCI_MANIFEST,
  pushBlob,
  pushManifest,
  type Resp,
  readTree,
  req,
  sha256,
  startBerth,
  type Target,
} from './helpers.js';

/** A request with the path sent exactly as given (fetch would normalise `..`). */
function raw(
  base: string,
  method: string,
  p: string,
  headers: Record<string, string> = {},
  body?: Buffer,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = http.request({ host: u.hostname, port: u.port, method, path: p, headers }, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => {
        b += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [p, b] of readTree(root)) out.set(p, sha256(b));
  return out;
}

function expectError(r: Resp | { status: number; body: string | Buffer }, status: number, code: string): void {
  const text = r.body.toString();
  assert.equal(r.status, status, text);
  const j = JSON.parse(text);
  assert.ok(Array.isArray(j.errors) && j.errors.length > 0, text);
  assert.equal(j.errors[0].code, code, text);
  assert.equal(typeof j.errors[0].message, 'string');
}

describe('hostile input', { timeout: 100_000 }, () => {
  let t: Target;
  const name = 'safe/repo';
  const layer = gzipTar('a.txt', 'a');
  const cfg = configBlob();
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: desc(OCI_CONFIG, cfg),
      layers: [desc(OCI_LAYER_GZIP, layer)],
    }),
  );
  let before0: Map<string, string>;

  before(async () => {
    t = await startBerth();
    for (const b of [layer, cfg]) assert.equal((await pushBlob(t.url, name, b)).status, 201);
    assert.equal((await pushManifest(t.url, name, 'v1', manifest)).status, 201);
  });
  after(() => t.close());

  const unchanged = () => {
    const now = snapshot(t.root);
    for (const [p, h] of before0) assert.equal(now.get(p), h, `changed: ${p}`);
    for (const p of now.keys()) {
      if (!before0.has(p) && !p.includes('/_uploads/')) assert.fail(`new file: ${p}`);
    }
  };

  test('bad digests → 400 DIGEST_INVALID', async () => {
    before0 = snapshot(t.root);
    for (const d of [
      'sha256:xyz',
      `md5:${'a'.repeat(32)}`,
      `sha256:${'A'.repeat(64)}`,
      'sha256:..%2f..%2fetc',
      'nocolon:',
    ]) {
      expectError(await raw(t.url, 'GET', `/v2/${name}/blobs/${d}`), 400, 'DIGEST_INVALID');
      expectError(await raw(t.url, 'GET', `/v2/${name}/referrers/${d}`), 400, 'DIGEST_INVALID');
    }
    expectError(
      await req('PUT', `${t.url}/v2/${name}/manifests/sha256:nothex`, { body: manifest }),
      400,
      'DIGEST_INVALID',
    );
    const post = await req('POST', `${t.url}/v2/${name}/blobs/uploads/?digest=sha256:short`, { body: 'x' });
    expectError(post, 400, 'DIGEST_INVALID');
    unchanged();
  });

  test('names outside the grammar (.., upper case, empty components, too long) → 400 NAME_INVALID', async () => {
    before0 = snapshot(t.root);
    for (const n of [
      'a/%2e%2e/b',
      '..',
      'a/../../etc',
      'UPPER/case',
      'a//b',
      '_a',
      'a/-b',
      `${'x'.repeat(256)}`,
      'a%2f..%2fb',
    ]) {
      const r = await raw(t.url, 'GET', `/v2/${n}/tags/list`);
      expectError(r, 400, 'NAME_INVALID');
      const p = await raw(t.url, 'PUT', `/v2/${n}/manifests/v1`, { 'Content-Type': OCI_MANIFEST }, manifest);
      assert.ok([400].includes(p.status), `${n}: ${p.status}`);
    }
    const m = await req('POST', `${t.url}/v2/${name}/blobs/uploads/?mount=${sha256(layer)}&from=..%2Fetc`);
    expectError(m, 400, 'NAME_INVALID');
    unchanged();
    assert.ok(!fs.existsSync(path.join(t.root, 'docker/registry/v2/etc')));
  });

  test('oversized manifest → 413, nothing stored (with and without Content-Length)', async () => {
    before0 = snapshot(t.root);
    const big = Buffer.alloc(4 * 1024 * 1024 + 10, ' ');
    expectError(await pushManifest(t.url, name, 'big', big), 413, 'SIZE_INVALID');
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(t.url);
      const rq = http.request(
        {
          host: u.hostname,
          port: u.port,
          method: 'PUT',
          path: `/v2/${name}/manifests/big2`,
          headers: { 'Content-Type': OCI_MANIFEST, 'Transfer-Encoding': 'chunked' },
        },
        (res) => {
          let b = '';
          res.on('data', (d: Buffer) => {
            b += d;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
        },
      );
      rq.on('error', reject);
      for (let i = 0; i < 5; i++) rq.write(Buffer.alloc(1024 * 1024, ' '));
      rq.end();
    });
    expectError(r, 413, 'SIZE_INVALID');
    unchanged();
  });

  test('malformed manifests → MANIFEST_INVALID / MANIFEST_BLOB_UNKNOWN, nothing stored', async () => {
    before0 = snapshot(t.root);
    const put = (b: string | Buffer, type = OCI_MANIFEST) => pushManifest(t.url, name, 'bad', Buffer.from(b), type);
    expectError(await put('blablabla'), 400, 'MANIFEST_INVALID');
    expectError(await put('[]'), 400, 'MANIFEST_INVALID');
    expectError(await put('{"schemaVersion":1,"name":"x"}'), 400, 'MANIFEST_INVALID');
    expectError(
      await put(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] })),
      400,
      'MANIFEST_INVALID',
    );
    expectError(await put(manifest, OCI_INDEX), 400, 'MANIFEST_INVALID'); // Content-Type vs mediaType
    const badDesc = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: 'sha256:zz', size: 1 },
      layers: [],
    });
    expectError(await put(badDesc), 400, 'MANIFEST_INVALID');
    const missing = Buffer.from('not pushed');
    const unknownBlob = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: desc(OCI_CONFIG, cfg),
      layers: [desc(OCI_LAYER_GZIP, missing)],
    });
    const r = await put(unknownBlob);
    expectError(r, 400, 'MANIFEST_BLOB_UNKNOWN');
    assert.equal(JSON.parse(r.body.toString()).errors[0].detail.digest, sha256(missing));
    const unknownChild = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [desc(OCI_MANIFEST, Buffer.from('{}'))],
    });
    expectError(await put(unknownChild, OCI_INDEX), 400, 'MANIFEST_BLOB_UNKNOWN');
    expectError(await pushManifest(t.url, name, '-bad-tag', manifest), 400, 'TAG_INVALID');
    unchanged();
  });

  test('manifest digest mismatch → 400 DIGEST_INVALID, nothing stored', async () => {
    before0 = snapshot(t.root);
    const other = sha256('something else');
    expectError(await pushManifest(t.url, name, other, manifest), 400, 'DIGEST_INVALID');
    unchanged();
  });

  test('upload digest mismatch → 400 DIGEST_INVALID; no blob, session gone', async () => {
    before0 = snapshot(t.root);
    const post = await req('POST', `${t.url}/v2/${name}/blobs/uploads/`);
    const loc = new URL(post.headers.get('location')!, t.url);
    const data = Buffer.from('the real bytes');
    const lie = sha256('other bytes');
    loc.searchParams.set('digest', lie);
    expectError(await req('PUT', loc.toString(), { body: data }), 400, 'DIGEST_INVALID');
    assert.equal((await req('GET', `${t.url}/v2/${name}/blobs/${lie}`)).status, 404);
    assert.ok(!fs.existsSync(path.join(t.root, 'docker/registry/v2/blobs/sha256', lie.slice(7, 9), lie.slice(7))));
    expectError(await req('GET', new URL(post.headers.get('location')!, t.url).toString()), 404, 'BLOB_UPLOAD_UNKNOWN');
    // monolithic too
    expectError(
      await req('POST', `${t.url}/v2/${name}/blobs/uploads/?digest=${lie}`, { body: data }),
      400,
      'DIGEST_INVALID',
    );
    unchanged();
  });

  test('wrong Content-Range → 416 with the current Range; the session stays usable', async () => {
    const post = await req('POST', `${t.url}/v2/${name}/blobs/uploads/`);
    const loc = new URL(post.headers.get('location')!, t.url).toString();
    const data = Buffer.from('0123456789');
    const gap = await req('PATCH', loc, { headers: { 'Content-Range': '5-9' }, body: data.subarray(5) });
    expectError(gap, 416, 'BLOB_UPLOAD_INVALID');
    assert.equal(gap.headers.get('range'), '0-0');
    const ok = await req('PATCH', loc, { headers: { 'Content-Range': '0-4' }, body: data.subarray(0, 5) });
    assert.equal(ok.status, 202);
    assert.equal(ok.headers.get('range'), '0-4');
    const overlap = await req('PATCH', loc, { headers: { 'Content-Range': '3-7' }, body: data.subarray(3, 8) });
    expectError(overlap, 416, 'BLOB_UPLOAD_INVALID');
    expectError(
      await req('PATCH', loc, { headers: { 'Content-Range': 'garbage' }, body: data }),
      416,
      'BLOB_UPLOAD_INVALID',
    );
    expectError(
      await req('PATCH', loc, { headers: { 'Content-Range': '5-12' }, body: data.subarray(5) }),
      400,
      'SIZE_INVALID',
    );
    const st = await req('GET', loc);
    assert.equal(st.status, 204);
    assert.equal(st.headers.get('range'), '0-4');
    const fin = new URL(loc);
    fin.searchParams.set('digest', sha256(data));
    const done = await req('PUT', fin.toString(), { headers: { 'Content-Range': '5-9' }, body: data.subarray(5) });
    assert.equal(done.status, 201, done.body.toString());
    const g = await req('GET', `${t.url}/v2/${name}/blobs/${sha256(data)}`);
    assert.ok(g.body.equals(data));
  });

  test('truncated upload (client disconnects) leaves no blob', async () => {
    before0 = snapshot(t.root);
    const data = Buffer.alloc(256 * 1024, 7);
    const d = sha256(data);
    await new Promise<void>((resolve) => {
      const u = new URL(t.url);
      const rq = http.request({
        host: u.hostname,
        port: u.port,
        method: 'POST',
        path: `/v2/${name}/blobs/uploads/?digest=${d}`,
        headers: { 'Content-Length': String(data.length) },
      });
      rq.on('error', () => resolve());
      rq.write(data.subarray(0, 1000), () => {
        setTimeout(() => {
          rq.destroy();
          resolve();
        }, 100);
      });
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await req('HEAD', `${t.url}/v2/${name}/blobs/${d}`)).status, 404);
    unchanged();
  });

  test('blob Range requests → 206 with the bytes, unsatisfiable → 416', async () => {
    const d = sha256(layer);
    const r = await req('GET', `${t.url}/v2/${name}/blobs/${d}`, { headers: { Range: 'bytes=2-9' } });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(layer.subarray(2, 10)));
    assert.equal(r.headers.get('content-range'), `bytes 2-9/${layer.length}`);
    const s = await req('GET', `${t.url}/v2/${name}/blobs/${d}`, { headers: { Range: 'bytes=-4' } });
    assert.ok(s.body.equals(layer.subarray(layer.length - 4)));
    const bad = await req('GET', `${t.url}/v2/${name}/blobs/${d}`, {
      headers: { Range: `bytes=${layer.length + 5}-` },
    });
    assert.equal(bad.status, 416);
  });

  test('every response carries the API version header; unknown routes and methods get the envelope', async () => {
    const r = await req('GET', `${t.url}/v2/`);
    assert.equal(r.headers.get('docker-distribution-api-version'), 'registry/2.0');
    expectError(await req('GET', `${t.url}/v2/${name}/nothing/here`), 404, 'NAME_UNKNOWN');
    expectError(await req('POST', `${t.url}/v2/${name}/manifests/v1`), 405, 'UNSUPPORTED');
    expectError(await req('GET', `${t.url}/v2/${name}/tags/list?n=-1`), 400, 'PAGINATION_NUMBER_INVALID');
    expectError(await req('GET', `${t.url}/v2/no/such/tags/list`), 404, 'NAME_UNKNOWN');
    expectError(await req('GET', `${t.url}/v2/${name}/blobs/uploads/not-a-session`), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  test('content negotiation: an OCI manifest is not served to a client that only accepts Docker types', async () => {
    const r = await req('GET', `${t.url}/v2/${name}/manifests/v1`, {
      headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    expectError(r, 404, 'MANIFEST_UNKNOWN');
    const ok = await req('GET', `${t.url}/v2/${name}/manifests/v1`, {
      headers: { Accept: `${OCI_MANIFEST}, */*;q=0.1` },
    });
    assert.equal(ok.status, 200);
  });

  test('concurrent pushes of the same blob and manifest all succeed and the result is intact', async () => {
    const blob = Buffer.alloc(1024 * 1024, 3);
    const results = await Promise.all(Array.from({ length: 8 }, () => pushBlob(t.url, 'race/repo', blob)));
    assert.deepEqual(
      results.map((r) => r.status),
      Array(8).fill(201),
    );
    const mono = await Promise.all(
      Array.from({ length: 4 }, () =>
        req('POST', `${t.url}/v2/race/repo/blobs/uploads/?digest=${sha256(blob)}`, { body: blob }),
      ),
    );
    assert.deepEqual(
      mono.map((r) => r.status),
      Array(4).fill(201),
    );
    const g = await req('GET', `${t.url}/v2/race/repo/blobs/${sha256(blob)}`);
    assert.equal(sha256(g.body), sha256(blob));
    for (const b of [layer, cfg]) await pushBlob(t.url, 'race/repo', b);
    const ms = await Promise.all(Array.from({ length: 8 }, () => pushManifest(t.url, 'race/repo', 'same', manifest)));
    assert.deepEqual(
      ms.map((r) => r.status),
      Array(8).fill(201),
    );
    const m = await req('GET', `${t.url}/v2/race/repo/manifests/same`);
    assert.ok(m.body.equals(manifest));
  });

  test('stale uploads are purged by age; fresh ones are kept', async () => {
    const a = await req('POST', `${t.url}/v2/${name}/blobs/uploads/`);
    const b = await req('POST', `${t.url}/v2/${name}/blobs/uploads/`);
    const idA = a.headers.get('docker-upload-uuid')!;
    const idB = b.headers.get('docker-upload-uuid')!;
    const upDir = path.join(t.root, 'docker/registry/v2/repositories', name, '_uploads');
    assert.match(fs.readFileSync(path.join(upDir, idA, 'startedat'), 'utf8'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    fs.writeFileSync(path.join(upDir, idA, 'startedat'), '2020-01-01T00:00:00Z');
    const driver = new FilesystemDriver(t.root);
    const dry = await purgeUploads(driver, new Date(Date.now() - 3600_000), true);
    assert.ok(dry.removed.some((p) => p.endsWith(idA)));
    assert.ok(fs.existsSync(path.join(upDir, idA)));
    const res = await purgeUploads(driver, new Date(Date.now() - 3600_000), false);
    assert.ok(res.removed.some((p) => p.endsWith(idA)));
    assert.ok(!fs.existsSync(path.join(upDir, idA)));
    assert.ok(fs.existsSync(path.join(upDir, idB)));
  });
});

describe('read-only and delete-disabled modes', () => {
  test('read-only refuses writes with 405 UNSUPPORTED and still serves reads', async () => {
    const t = await startBerth({ readOnly: true });
    try {
      expectError(await req('POST', `${t.url}/v2/a/blobs/uploads/`), 405, 'UNSUPPORTED');
      expectError(await req('PUT', `${t.url}/v2/a/manifests/v1`, { body: '{}' }), 405, 'UNSUPPORTED');
      assert.equal((await req('GET', `${t.url}/v2/`)).status, 200);
      assert.equal((await req('GET', `${t.url}/v2/_catalog`)).status, 200);
    } finally {
      await t.close();
    }
  });
  test('deletes are refused with 405 UNSUPPORTED unless storage.delete.enabled', async () => {
    const t = await startBerth({ deleteEnabled: false });
    try {
      expectError(await req('DELETE', `${t.url}/v2/a/manifests/v1`), 405, 'UNSUPPORTED');
      expectError(await req('DELETE', `${t.url}/v2/a/blobs/${sha256('x')}`), 405, 'UNSUPPORTED');
    } finally {
      await t.close();
    }
  });
});
