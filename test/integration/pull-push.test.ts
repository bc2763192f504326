// Pull and push against real registries on 127.0.0.1: Debian's docker-registry
// 2.8 and berth's own registry; a token server in front of one for the Bearer
// flow; htpasswd for Basic auth. No mocks.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { encodeRegistryAuth } from '../../src/distribution/index.js';
import { chainIds, type Digest, MediaType } from '../../src/oci/index.js';
import { haveDistribution, startBerth, startDistribution, type Target } from '../registry/helpers.js';
import {
  blobDataPath,
  buildImage,
  type Engine,
  hostOf,
  openEngine,
  progress,
  snapshot,
  startDistributionWithHtpasswd,
  uploadImage,
  uploadIndex,
} from './pull-push-kit.js';

const big = (n: number, seed: string) => {
  const b = Buffer.alloc(n);
  let x = seed.length;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = x >> 16;
  }
  return b;
};

describe('pull', { skip: !haveDistribution && 'docker-registry missing' }, () => {
  let dreg: Target;
  let breg: Target;
  let e: Engine;
  before(async () => {
    dreg = await startDistribution();
    breg = await startBerth();
    e = await openEngine();
  });
  after(async () => {
    await e?.close();
    await dreg?.close();
    await breg?.close();
  });

  test('single-arch gzip image from docker-registry: inspect, progress, repositories.json, v2 metadata', async () => {
    const img = buildImage([{ files: { a: 'one' } }, { files: { b: big(300_000, 'b') } }, { files: { c: 'three' } }]);
    await uploadImage(dreg.url, 'app/one', 'v1', img);
    const name = `${hostOf(dreg.url)}/app/one:v1`;
    const p = progress();
    const res = await e.dist.pull(name, { progress: p });
    assert.equal(res.imageId, img.configDigest);
    assert.equal(res.manifestDigest, img.manifestDigest);
    const ins = e.service.inspect(name);
    assert.equal(ins.Id, img.configDigest);
    assert.deepEqual(ins.RepoTags, [name]);
    assert.deepEqual(ins.RepoDigests, [`${hostOf(dreg.url)}/app/one@${img.manifestDigest}`]);
    assert.deepEqual(ins.RootFS.Layers, img.diffIds);
    const id0 = img.layerDescs[0]!.digest.slice(7, 19);
    assert.deepEqual(p.messages[0], { id: 'v1', status: 'Pulling from app/one' });
    const st = p.statuses(id0);
    assert.equal(st[0], 'Pulling fs layer');
    for (const s of ['Verifying Checksum', 'Download complete', 'Pull complete'])
      assert.ok(st.includes(s), `${s} in ${st}`);
    assert.ok(st.indexOf('Download complete') < st.indexOf('Pull complete'));
    const tail = p.messages.slice(-2).map((m) => m.status);
    assert.deepEqual(tail, [`Digest: ${img.manifestDigest}`, `Status: Downloaded newer image for ${name}`]);
    // v2 metadata as moby writes it on pull
    for (let i = 0; i < 3; i++) {
      assert.equal(e.metadata.getDiffId(img.layerDescs[i]!.digest), img.diffIds[i]);
      assert.deepEqual(e.metadata.getMetadata(img.diffIds[i]!), [
        { Digest: img.layerDescs[i]!.digest, SourceRepository: `${hostOf(dreg.url)}/app/one`, HMAC: '' },
      ]);
    }
    // only the image's reference is left on the top layer
    const chain = chainIds(img.diffIds);
    assert.deepEqual(e.layers.referenceCounts(chain[2]!), { refs: 1, children: 0 });
    assert.deepEqual(snapshot(e).tmp, []);
    // again: nothing downloaded
    const p2 = progress();
    const res2 = await e.dist.pull(name, { progress: p2 });
    assert.equal(res2.updated, false);
    assert.deepEqual(p2.statuses(id0), ['Already exists']);
    assert.equal(p2.messages.at(-1)!.status, `Status: Image is up to date for ${name}`);
    assert.deepEqual(e.layers.referenceCounts(chain[2]!), { refs: 1, children: 0 });
  });

  test('index from berth registry: linux/amd64 picked; gzip, zstd and uncompressed layers; pull by digest', async () => {
    const amd = buildImage([
      { files: { g: big(200_000, 'g') }, comp: 'gzip' },
      { files: { z: big(200_000, 'z') }, comp: 'zstd' },
      { files: { n: 'plain' }, comp: 'none' },
    ]);
    const arm = buildImage([{ files: { arm: 'arm' } }], { arch: 'arm64' });
    const { digest } = await uploadIndex(breg.url, 'multi', 'latest', [
      { img: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { img: amd, platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    const name = `${hostOf(breg.url)}/multi`;
    const res = await e.dist.pull(name);
    assert.equal(res.imageId, amd.configDigest);
    assert.equal(res.manifestDigest, digest, 'RepoDigests record the index digest, as dockerd');
    assert.deepEqual(e.service.inspect(name).RootFS.Layers, amd.diffIds);
    assert.deepEqual(e.service.inspect(res.imageId).RepoDigests, [`${name}@${digest}`]);
    // by digest, into a fresh engine
    const e2 = await openEngine();
    try {
      const p = progress();
      const r2 = await e2.dist.pull(`${name}@${digest}`, { progress: p });
      assert.equal(r2.imageId, amd.configDigest);
      assert.deepEqual(e2.service.inspect(r2.imageId).RepoTags, []);
      assert.deepEqual(e2.service.inspect(r2.imageId).RepoDigests, [`${name}@${digest}`]);
      assert.equal(p.messages[0]!.id, digest);
      await assert.rejects(e2.dist.pull(`${name}:nope`), (err: Error) =>
        err.message.startsWith(`manifest for ${name}:nope not found: manifest unknown: `),
      );
    } finally {
      await e2.close();
    }
  });

  test('Already exists: a shared base layer is not downloaded again', async () => {
    const base = { files: { base: big(100_000, 'base') } };
    const one = buildImage([base, { files: { x: '1' } }], { seed: 'one' });
    const two = buildImage([base, { files: { y: '2' } }], { seed: 'two' });
    await uploadImage(breg.url, 'shared/one', 'latest', one);
    await uploadImage(breg.url, 'shared/two', 'latest', two);
    await e.dist.pull(`${hostOf(breg.url)}/shared/one`);
    const p = progress();
    await e.dist.pull(`${hostOf(breg.url)}/shared/two`, { progress: p });
    assert.deepEqual(p.statuses(two.layerDescs[0]!.digest.slice(7, 19)), ['Already exists']);
    assert.ok(p.statuses(two.layerDescs[1]!.digest.slice(7, 19)).includes('Pull complete'));
  });

  test('concurrent identical pulls share downloads and registrations', async () => {
    const img = buildImage([{ files: { a: big(500_000, 'ca') } }, { files: { b: big(500_000, 'cb') } }]);
    await uploadImage(breg.url, 'conc', 'latest', img);
    const e2 = await openEngine({ maxConcurrentDownloads: 1 });
    try {
      const name = `${hostOf(breg.url)}/conc`;
      const rs = await Promise.all([e2.dist.pull(name), e2.dist.pull(name), e2.dist.pull(name)]);
      for (const r of rs) assert.equal(r.imageId, img.configDigest);
      const chain = chainIds(img.diffIds);
      assert.deepEqual(
        e2.layers
          .list()
          .map((l) => l.chainId)
          .sort(),
        [...chain].sort(),
      );
      assert.deepEqual(e2.layers.referenceCounts(chain[1]!), { refs: 1, children: 0 });
      assert.deepEqual(e2.layers.referenceCounts(chain[0]!), { refs: 0, children: 1 });
      assert.deepEqual(snapshot(e2).tmp, []);
    } finally {
      await e2.close();
    }
  });

  test('bad input leaves the store as it was: lying blob, truncated blob, unreachable registry, schema1', async () => {
    const before = snapshot(e);
    // a blob whose content does not hash to its digest (same size)
    const liar = buildImage([{ files: { ok: 'fine' } }, { files: { lie: big(50_000, 'lie') } }]);
    await uploadImage(breg.url, 'bad/liar', 'latest', liar);
    const f = blobDataPath(breg.root, liar.layerDescs[1]!.digest);
    const orig = fs.readFileSync(f);
    const tampered = Buffer.from(orig);
    tampered[tampered.length - 20]! ^= 0xff;
    fs.writeFileSync(f, tampered);
    await assert.rejects(e.dist.pull(`${hostOf(breg.url)}/bad/liar`), {
      message: `filesystem layer verification failed for digest ${liar.layerDescs[1]!.digest}`,
    });
    assert.deepEqual(snapshot(e), before);
    // a truncated blob
    fs.writeFileSync(f, orig.subarray(0, orig.length - 1000));
    await assert.rejects(
      e.dist.pull(`${hostOf(breg.url)}/bad/liar`),
      /filesystem layer verification failed for digest .*: got \d+ of \d+ bytes/,
    );
    assert.deepEqual(snapshot(e), before);
    // a config whose diff IDs do not match the layers
    const wrong = buildImage([{ files: { w: 'w' } }]);
    const cfg = JSON.parse(wrong.config.toString());
    cfg.rootfs.diff_ids = [`sha256:${'1'.repeat(64)}`];
    const wrong2 = { ...wrong, config: Buffer.from(JSON.stringify(cfg)) };
    const { sha256 } = await import('../../src/oci/index.js');
    wrong2.configDigest = sha256(wrong2.config);
    wrong2.manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, size: wrong2.config.length, digest: wrong2.configDigest },
        layers: wrong.layerDescs,
      }),
    );
    await uploadImage(breg.url, 'bad/diffids', 'latest', wrong2);
    await assert.rejects(e.dist.pull(`${hostOf(breg.url)}/bad/diffids`), {
      message: "layers from manifest don't match image configuration",
    });
    assert.deepEqual(snapshot(e), before);
    // nobody listening
    await assert.rejects(e.dist.pull('127.0.0.1:1/nothing'), {
      message: 'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
    });
    await assert.rejects(e.dist.pull(`${hostOf(breg.url)}/no/such/repo`), /not found: (manifest|name) unknown/);
    assert.deepEqual(snapshot(e), before);
  });

  test('mirror for a non-Hub registry (berth-registry-mirrors), falling back to the origin when the mirror fails', async () => {
    const img = buildImage([{ files: { m: 'mirrored' } }]);
    await uploadImage(breg.url, 'mirrored', 'latest', img); // the mirror has it
    const origin = await startBerth();
    const e2 = await openEngine({ mirrors: { 'registry.invalid:5000': [breg.url] } });
    try {
      const r = await e2.dist.pull('registry.invalid:5000/mirrored');
      assert.equal(r.imageId, img.configDigest);
      // a mirror that does not have it: the origin answers
      const only = buildImage([{ files: { o: 'origin' } }]);
      await uploadImage(origin.url, 'orig', 'latest', only);
      const e3 = await openEngine({ mirrors: { [hostOf(origin.url)]: [breg.url, 'http://127.0.0.1:1'] } });
      try {
        const r3 = await e3.dist.pull(`${hostOf(origin.url)}/orig`);
        assert.equal(r3.imageId, only.configDigest);
      } finally {
        await e3.close();
      }
    } finally {
      await e2.close();
      await origin.close();
    }
  });

  test('large layers (staged off-thread, in parallel): progress as before; a corrupt or cancelled pull leaves nothing', async () => {
    const img = buildImage([
      { files: { l0: big(2_500_000, 'L0') } },
      { files: { l1: big(3_000_000, 'L1') } },
      { files: { l2: big(2_000_000, 'L2') } },
    ]);
    await uploadImage(dreg.url, 'big/app', 'v1', img);
    const name = `${hostOf(dreg.url)}/big/app:v1`;
    const e2 = await openEngine();
    try {
      const p = progress();
      await e2.dist.pull(name, { progress: p });
      assert.deepEqual(e2.service.inspect(name).RootFS.Layers, img.diffIds);
      for (const d of img.layerDescs) {
        const st = p.statuses(d.digest.slice(7, 19)).filter((s, i, a) => s !== a[i - 1]);
        assert.deepEqual(
          st.filter((s) => s !== 'Waiting'),
          ['Pulling fs layer', 'Downloading', 'Verifying Checksum', 'Download complete', 'Extracting', 'Pull complete'],
          `${d.digest}: ${st}`,
        );
        const ex = p.messages.filter((m) => m.id === d.digest.slice(7, 19) && m.status === 'Extracting').at(-1)!;
        assert.deepEqual(ex.detail, { current: d.size, total: d.size });
      }
      assert.deepEqual(snapshot(e2).tmp, []);
    } finally {
      await e2.close();
    }
    // the middle layer's blob lies (same size): nothing is left, whatever was extracted already
    const f = blobDataPath(dreg.root, img.layerDescs[1]!.digest);
    const orig = fs.readFileSync(f);
    const bad = Buffer.from(orig);
    bad[Math.floor(bad.length / 2)]! ^= 0xff;
    fs.writeFileSync(f, bad);
    const e3 = await openEngine();
    try {
      const before = snapshot(e3);
      await assert.rejects(e3.dist.pull(name), {
        message: `filesystem layer verification failed for digest ${img.layerDescs[1]!.digest}`,
      });
      assert.deepEqual(snapshot(e3), before);
      assert.deepEqual(fs.readdirSync(`${e3.root}/image/overlay2/layerdb/tmp`), []);
      fs.writeFileSync(f, orig);
      // cancelled while downloading
      const ac = new AbortController();
      let aborted = false;
      await assert.rejects(
        e3.dist.pull(name, {
          signal: ac.signal,
          progress: {
            update: (_id, status) => {
              if (status === 'Downloading' && !aborted) {
                aborted = true;
                ac.abort();
              }
            },
          },
        }),
      );
      assert.ok(aborted, 'cancelled mid-download');
      assert.deepEqual(snapshot(e3), before);
      assert.deepEqual(fs.readdirSync(`${e3.root}/image/overlay2/layerdb/tmp`), []);
      // and then it pulls fine
      const r = await e3.dist.pull(name);
      assert.equal(r.imageId, img.configDigest);
    } finally {
      fs.writeFileSync(f, orig);
      await e3.close();
    }
  });

  test('the same blob twice in one image, and two images sharing a base pulled at once', async () => {
    const same = { files: { s: big(1_500_000, 'same') } };
    const twice = buildImage([same, { files: { mid: 'middle' } }, same]);
    assert.equal(twice.layerDescs[0]!.digest, twice.layerDescs[2]!.digest);
    await uploadImage(breg.url, 'twice', 'latest', twice);
    const base = { files: { base: big(1_200_000, 'shared-base') } };
    const one = buildImage([base, { files: { x: '1' } }], { seed: 'conc-one' });
    const two = buildImage([base, { files: { y: '2' } }], { seed: 'conc-two' });
    await uploadImage(breg.url, 'conc/one', 'latest', one);
    await uploadImage(breg.url, 'conc/two', 'latest', two);
    const e2 = await openEngine();
    try {
      const r = await e2.dist.pull(`${hostOf(breg.url)}/twice`);
      assert.deepEqual(e2.service.inspect(r.imageId).RootFS.Layers, twice.diffIds);
      assert.equal(e2.layers.list().length, 3);
      const [a, b] = await Promise.all([
        e2.dist.pull(`${hostOf(breg.url)}/conc/one`),
        e2.dist.pull(`${hostOf(breg.url)}/conc/two`),
      ]);
      assert.equal(a.imageId, one.configDigest);
      assert.equal(b.imageId, two.configDigest);
      const baseChain = chainIds(one.diffIds)[0]!;
      assert.deepEqual(e2.layers.referenceCounts(baseChain), { refs: 0, children: 2 });
      assert.deepEqual(snapshot(e2).tmp, []);
      assert.deepEqual(fs.readdirSync(`${e2.root}/image/overlay2/layerdb/tmp`), []);
    } finally {
      await e2.close();
    }
  });
});

describe('auth', { skip: !haveDistribution && 'docker-registry missing' }, () => {
  test('basic auth (htpasswd on docker-registry): login, pull, wrong password', async () => {
    const line = `alice:${bcrypt.hashSync('secret', 5)}`;
    const reg = await startDistributionWithHtpasswd(line);
    const e = await openEngine();
    try {
      const host = hostOf(reg.url);
      assert.deepEqual(await e.dist.login({ username: 'alice', password: 'secret', serveraddress: host }), {
        Status: 'Login Succeeded',
      });
      await assert.rejects(e.dist.login({ username: 'alice', password: 'wrong', serveraddress: host }), {
        message: `login attempt to http://${host}/v2/ failed with status: 401 Unauthorized`,
      });
      // push an image with the right credentials, using berth itself
      const src = await openEngine();
      const open = await startBerth();
      try {
        const img = buildImage([{ files: { s: 'secret stuff' } }]);
        await uploadImage(open.url, 'src', 'latest', img);
        await src.dist.pull(`${hostOf(open.url)}/src`);
        src.service.tag(`${hostOf(open.url)}/src`, `${host}/private:v1`);
        const auth = { username: 'alice', password: 'secret' };
        await src.dist.push(`${host}/private:v1`, { auth });
        const before = snapshot(e);
        await assert.rejects(e.dist.pull(`${host}/private:v1`), { message: 'unauthorized: authentication required' });
        await assert.rejects(e.dist.pull(`${host}/private:v1`, { auth: { username: 'alice', password: 'nope' } }), {
          message: 'unauthorized: authentication required',
        });
        assert.deepEqual(snapshot(e), before);
        const r = await e.dist.pull(`${host}/private:v1`, { auth });
        assert.equal(r.imageId, img.configDigest);
      } finally {
        await src.close();
        await open.close();
      }
    } finally {
      await e.close();
      await reg.close();
    }
  });

  test('Bearer token flow (a token server in front of berth registry): anonymous refused, credentials, refresh token, scope cache', async () => {
    const upstream = await startBerth();
    const tokens = new Map<string, string>(); // token → user ('' anonymous)
    let tokenRequests = 0;
    const server = http.createServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (u.pathname === '/token') {
        tokenRequests++;
        let user: string | undefined;
        const a = req.headers.authorization;
        if (a?.startsWith('Basic ')) {
          const [n, pw] = Buffer.from(a.slice(6), 'base64').toString().split(':');
          if (n !== 'bob' || pw !== 'pw') {
            res.writeHead(401, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'incorrect username or password' }] }));
            return;
          }
          user = n;
        }
        let body = '';
        req.on('data', (c) => {
          body += c;
        });
        req.on('end', () => {
          if (req.method === 'POST') {
            const f = new URLSearchParams(body);
            if (f.get('refresh_token') !== 'refresh-bob') {
              res.writeHead(401);
              res.end();
              return;
            }
            user = 'bob';
          }
          const t = `t${tokens.size}`;
          tokens.set(t, user ?? '');
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              token: t,
              expires_in: 300,
              ...(user && u.searchParams.get('offline_token') === 'true' ? { refresh_token: 'refresh-bob' } : {}),
            }),
          );
        });
        return;
      }
      const authz = req.headers.authorization;
      const tok = authz?.startsWith('Bearer ') ? authz.slice(7) : undefined;
      if (!tok || !tokens.get(tok)) {
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="test-registry"`,
          'content-type': 'application/json',
        });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        return;
      }
      const target = new URL(req.url!, upstream.url);
      const preq = http.request(
        target,
        { method: req.method, headers: { ...req.headers, host: target.host } },
        (pres) => {
          res.writeHead(pres.statusCode!, pres.headers);
          pres.pipe(res);
        },
      );
      req.pipe(preq);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const e = await openEngine();
    try {
      const img = buildImage([{ files: { t: 'token' } }, { files: { u: 'two' } }]);
      await uploadImage(upstream.url, 'tok/app', 'latest', img);
      await assert.rejects(e.dist.pull(`${host}/tok/app`), { message: 'unauthorized: authentication required' });
      await assert.rejects(e.dist.login({ username: 'bob', password: 'bad', serveraddress: host }), {
        message: 'unauthorized: incorrect username or password',
      });
      const login = await e.dist.login({ username: 'bob', password: 'pw', serveraddress: `http://${host}` });
      assert.deepEqual(login, { Status: 'Login Succeeded', IdentityToken: 'refresh-bob' });
      tokenRequests = 0;
      const r = await e.dist.pull(`${host}/tok/app`, { auth: { username: 'bob', password: 'pw' } });
      assert.equal(r.imageId, img.configDigest);
      assert.equal(tokenRequests, 1, 'one token for the scope, cached for every request of the pull');
      // the identity token alone (what the CLI sends after login), via X-Registry-Auth encoding
      const { decodeRegistryAuth } = await import('../../src/distribution/index.js');
      const auth = decodeRegistryAuth(encodeRegistryAuth({ identitytoken: 'refresh-bob', serveraddress: host }));
      const e2 = await openEngine();
      try {
        const r2 = await e2.dist.pull(`${host}/tok/app`, { auth });
        assert.equal(r2.imageId, img.configDigest);
      } finally {
        await e2.close();
      }
    } finally {
      await e.close();
      server.close();
      await upstream.close();
    }
  });
});

describe('push', { skip: !haveDistribution && 'docker-registry missing' }, () => {
  test('to a new repository of the same registry: blobs mounted, same manifest; to another registry: same config and diff IDs', async () => {
    const dreg = await startDistribution();
    const other = await startBerth();
    const e = await openEngine();
    try {
      const img = buildImage([{ files: { a: big(100_000, 'pa') } }, { files: { b: 'bee' } }], { format: 'docker' });
      await uploadImage(dreg.url, 'orig/app', 'v1', img, 'docker');
      const host = hostOf(dreg.url);
      await e.dist.pull(`${host}/orig/app:v1`);
      e.service.tag(`${host}/orig/app:v1`, `${host}/copy/app:v2`);
      const p = progress();
      const [res] = await e.dist.push(`${host}/copy/app:v2`, { progress: p });
      assert.equal(p.messages[0]!.status, `The push refers to repository [${host}/copy/app]`);
      for (const d of img.diffIds) {
        const st = p.statuses(d.slice(7, 19));
        assert.equal(st[0], 'Preparing');
        assert.equal(st.at(-1), 'Mounted from orig/app');
      }
      assert.equal(res!.digest, img.manifestDigest, 'the same manifest, byte for byte');
      assert.equal(p.messages.at(-1)!.status, `v2: digest: ${img.manifestDigest} size: ${img.manifest.length}`);
      assert.ok(
        e.service.inspect(`${host}/copy/app:v2`).RepoDigests.includes(`${host}/copy/app@${img.manifestDigest}`),
      );
      // push again: everything already there
      const p2 = progress();
      await e.dist.push(`${host}/copy/app:v2`, { progress: p2 });
      for (const d of img.diffIds) assert.equal(p2.statuses(d.slice(7, 19)).at(-1), 'Layer already exists');
      // to another registry: uploaded, recompressed; config and diff IDs kept
      const oh = hostOf(other.url);
      e.service.tag(`${host}/orig/app:v1`, `${oh}/elsewhere:latest`);
      const p3 = progress();
      const [r3] = await e.dist.push(`${oh}/elsewhere`, { progress: p3 });
      for (const d of img.diffIds) assert.equal(p3.statuses(d.slice(7, 19)).at(-1), 'Pushed');
      const fresh = await openEngine();
      try {
        const pulled = await fresh.dist.pull(`${oh}/elsewhere@${r3!.digest}`);
        assert.equal(pulled.imageId, img.configDigest);
        assert.deepEqual(fresh.service.inspect(pulled.imageId).RootFS.Layers, img.diffIds);
      } finally {
        await fresh.close();
      }
      await assert.rejects(e.dist.push(`${oh}/nothing:here`), {
        message: `An image does not exist locally with the tag: ${oh}/nothing`,
      });
    } finally {
      await e.close();
      await dreg.close();
      await other.close();
    }
  });
});

void (null as unknown as Digest);
