// Garbage collection: what is marked, what is swept, that everything still
// referenced pulls intact afterwards (from berth AND from docker-registry 2.8
// serving the collected root), the CLI's distribution-style output, GC while
// the server is read-only, and the server's own online GC racing a push.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { garbageCollect } from '../../src/registry/gc.js';
import { FilesystemDriver } from '../../src/registry/storage/index.js';
import {
  configBlob,
  desc,
  gzipTar,
  haveDistribution,
  OCI_CONFIG,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_LAYER_GZIP,
  OCI_MANIFEST,
  pushBlob,
  pushManifest,
  req,
  sha256,
  startBerth,
  startDistribution,
  tempDir,
} from './helpers.js';

interface Img {
  manifest: Buffer;
  digest: string;
  blobs: Buffer[];
}

async function pushImage(base: string, name: string, layers: Buffer[], extra: Record<string, unknown> = {}) {
  const cfg = configBlob();
  for (const b of [cfg, ...layers]) assert.equal((await pushBlob(base, name, b)).status, 201);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: desc(OCI_CONFIG, cfg),
      layers: layers.map((l) => desc(OCI_LAYER_GZIP, l)),
      ...extra,
    }),
  );
  return { manifest, digest: sha256(manifest), blobs: [cfg, ...layers] } satisfies Img;
}

async function put(base: string, name: string, ref: string, m: Buffer, type = OCI_MANIFEST) {
  const r = await pushManifest(base, name, ref, m, type);
  assert.equal(r.status, 201, `PUT ${name}:${ref}: ${r.body}`);
}

/** Pulls a manifest and every blob it needs (recursively for an index); asserts digests. */
async function pullAll(base: string, name: string, ref: string, accept = `${OCI_MANIFEST}, ${OCI_INDEX}`) {
  const r = await req('GET', `${base}/v2/${name}/manifests/${ref}`, { headers: { Accept: accept } });
  assert.equal(r.status, 200, `GET ${name}:${ref} → ${r.status} ${r.body}`);
  const m = r.json();
  for (const c of m.manifests ?? []) await pullAll(base, name, c.digest, accept);
  for (const b of [m.config, ...(m.layers ?? [])].filter(Boolean)) {
    const br = await req('GET', `${base}/v2/${name}/blobs/${b.digest}`);
    assert.equal(br.status, 200, `blob ${b.digest} of ${name}:${ref}`);
    assert.equal(sha256(br.body), b.digest);
  }
}

const layer = (s: string) => gzipTar(`f/${s}`, `${s}\n`.repeat(50));

/** A fixture with every kind of edge: retagged, index children, referrers, orphans, shared layers. */
async function fixture(base: string) {
  const shared = layer('shared');
  const a1 = await pushImage(base, 'app', [shared, layer('a1')]);
  await put(base, 'app', 'v1', a1.manifest);
  const a2 = await pushImage(base, 'app', [shared, layer('a2-only')]);
  await put(base, 'app', 'v2', a2.manifest);
  const a3 = await pushImage(base, 'app', [layer('a3')]);
  await put(base, 'app', 'v2', a3.manifest); // a2 becomes untagged
  // an index whose children are untagged
  const c1 = await pushImage(base, 'app', [layer('child-amd64')]);
  const c2 = await pushImage(base, 'app', [layer('child-arm64')]);
  await put(base, 'app', c1.digest, c1.manifest);
  await put(base, 'app', c2.digest, c2.manifest);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        desc(OCI_MANIFEST, c1.manifest, { platform: { os: 'linux', architecture: 'amd64' } }),
        desc(OCI_MANIFEST, c2.manifest, { platform: { os: 'linux', architecture: 'arm64' } }),
      ],
    }),
  );
  await put(base, 'app', 'multi', index, OCI_INDEX);
  // referrers (untagged): one of a kept image, one of the untagged a2
  const empty = Buffer.from('{}');
  assert.equal((await pushBlob(base, 'app', empty)).status, 201);
  const sigBlob = Buffer.from('signature of a1');
  assert.equal((await pushBlob(base, 'app', sigBlob)).status, 201);
  const referrer = (subject: Img, blob: Buffer) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.sig',
        config: desc(OCI_EMPTY, empty),
        layers: [desc('application/octet-stream', blob)],
        subject: desc(OCI_MANIFEST, subject.manifest),
      }),
    );
  const sigA1 = referrer(a1, sigBlob);
  const sigA2Blob = Buffer.from('signature of a2');
  assert.equal((await pushBlob(base, 'app', sigA2Blob)).status, 201);
  const sigA2 = referrer(a2, sigA2Blob);
  await put(base, 'app', sha256(sigA1), sigA1);
  await put(base, 'app', sha256(sigA2), sigA2);
  // a referrer of a referrer (an attestation of the signature): follows its subject
  const attBlob = Buffer.from('attestation of sigA1');
  assert.equal((await pushBlob(base, 'app', attBlob)).status, 201);
  const att = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.att',
      config: desc(OCI_EMPTY, empty),
      layers: [desc('application/octet-stream', attBlob)],
      subject: desc(OCI_MANIFEST, sigA1),
    }),
  );
  await put(base, 'app', sha256(att), att);
  // an orphan blob (uploaded, never referenced)
  const orphan = Buffer.from('orphan blob');
  assert.equal((await pushBlob(base, 'app', orphan)).status, 201);
  // another repository sharing a layer by mount
  const mount = await req('POST', `${base}/v2/other/blobs/uploads/?mount=${sha256(shared)}&from=app`);
  assert.equal(mount.status, 201);
  const o1 = await pushImage(base, 'other', [shared]);
  await put(base, 'other', 'latest', o1.manifest);
  return { shared, a1, a2, a3, c1, c2, index, sigA1, sigA2, att, sigA2Blob, attBlob, sigBlob, orphan, o1 };
}

const blobExists = (root: string, d: string) =>
  fs.existsSync(path.join(root, 'docker/registry/v2/blobs/sha256', d.slice(7, 9), d.slice(7), 'data'));
const revisionExists = (root: string, name: string, d: string) =>
  fs.existsSync(path.join(root, 'docker/registry/v2/repositories', name, '_manifests/revisions/sha256', d.slice(7)));

test('garbage-collect without -m: only unreferenced blobs go; every revision stays pullable', {
  timeout: 60_000,
}, async () => {
  const t = await startBerth();
  try {
    const f = await fixture(t.url);
    const lines: string[] = [];
    const dry = await garbageCollect(new FilesystemDriver(t.root), { dryRun: true, emit: (l) => lines.push(l) });
    assert.deepEqual(dry.blobsDeleted, [sha256(f.orphan)]);
    assert.ok(blobExists(t.root, sha256(f.orphan)), 'dry run deletes nothing');
    assert.ok(lines.some((l) => /^\d+ blobs marked, 1 blobs and 0 manifests eligible for deletion$/.test(l)));
    assert.ok(lines.includes(`blob eligible for deletion: ${sha256(f.orphan)}`));
    const r = await garbageCollect(new FilesystemDriver(t.root), {});
    assert.deepEqual(r.blobsDeleted, [sha256(f.orphan)]);
    assert.deepEqual(r.manifestsDeleted, []);
    assert.deepEqual(r.layerLinksDeleted, [{ name: 'app', digest: sha256(f.orphan) }]);
    assert.equal(blobExists(t.root, sha256(f.orphan)), false);
    assert.equal((await req('HEAD', `${t.url}/v2/app/blobs/${sha256(f.orphan)}`)).status, 404);
    for (const ref of ['v1', 'v2', 'multi', f.a2.digest, sha256(f.sigA1), sha256(f.sigA2), sha256(f.att)])
      await pullAll(t.url, 'app', ref);
    await pullAll(t.url, 'other', 'latest');
  } finally {
    await t.close();
  }
});

test('garbage-collect -m: untagged manifests go, index children and referrers of kept manifests stay', {
  timeout: 90_000,
}, async () => {
  const t = await startBerth();
  try {
    const f = await fixture(t.url);
    const r = await garbageCollect(new FilesystemDriver(t.root), { removeUntagged: true });
    const deleted = new Set(r.manifestsDeleted.map((m) => m.digest));
    // a2 (untagged by the retag) and the referrer of a2 go
    assert.deepEqual([...deleted].sort(), [f.a2.digest, sha256(f.sigA2)].sort());
    // their own blobs go; the shared layer (still used by a1 and other) stays
    const a2only = f.a2.blobs.filter((b) => b !== f.shared).map(sha256);
    for (const d of [...a2only, sha256(f.sigA2Blob), sha256(f.orphan), f.a2.digest, sha256(f.sigA2)])
      assert.ok(r.blobsDeleted.includes(d as never), `${d} should be deleted`);
    assert.ok(!r.blobsDeleted.includes(sha256(f.shared) as never));
    assert.equal(revisionExists(t.root, 'app', f.a2.digest), false);
    // untagged index children, the referrer of a1 and the referrer of that referrer all stay
    for (const d of [f.c1.digest, f.c2.digest, sha256(f.sigA1), sha256(f.att)]) {
      assert.ok(revisionExists(t.root, 'app', d), `${d} kept`);
      assert.ok(blobExists(t.root, d));
    }
    for (const ref of ['v1', 'v2', 'multi', sha256(f.sigA1), sha256(f.att)]) await pullAll(t.url, 'app', ref);
    await pullAll(t.url, 'other', 'latest');
    assert.equal((await req('GET', `${t.url}/v2/app/manifests/${f.a2.digest}`)).status, 404);
    // the referrers API still lists a1's signature
    const refs = (await req('GET', `${t.url}/v2/app/referrers/${f.a1.digest}`)).json();
    assert.deepEqual(
      refs.manifests.map((m: { digest: string }) => m.digest),
      [sha256(f.sigA1)],
    );
    // a second run finds nothing more
    const again = await garbageCollect(new FilesystemDriver(t.root), { removeUntagged: true });
    assert.deepEqual([again.blobsDeleted.length, again.manifestsDeleted.length], [0, 0]);
    // docker-registry 2.8 serves the collected tree
    if (haveDistribution) {
      await t.close();
      const d = await startDistribution({ root: t.root });
      try {
        for (const ref of ['v1', 'v2', 'multi']) await pullAll(d.url, 'app', ref);
        await pullAll(d.url, 'other', 'latest');
      } finally {
        await d.close();
      }
    }
  } finally {
    await t.close();
  }
});

test('docker-registry 2.8 garbage-collect -m on the same tree removes the index children berth keeps', {
  timeout: 90_000,
  skip: haveDistribution ? false : 'docker-registry 2.8 not installed',
}, async (tc) => {
  const t = await startBerth();
  let f: Awaited<ReturnType<typeof fixture>>;
  try {
    f = await fixture(t.url);
  } finally {
    await t.close();
  }
  const dir = tempDir('gc-dist-');
  const cfg = path.join(dir, 'config.yml');
  fs.writeFileSync(cfg, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${t.root}\n`);
  const out = spawnSync('/usr/bin/docker-registry', ['garbage-collect', '--dry-run', '--delete-untagged', cfg], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(out.status, 0, out.stderr);
  const eligible = out.stdout
    .split('\n')
    .filter((l) => l.startsWith('manifest eligible for deletion'))
    .join('\n');
  // distribution 2.8 would delete the untagged children of the tagged index (berth keeps them): the
  // recorded difference. Whatever it decides, berth's dry run must not list the children.
  const berth = await garbageCollect(new FilesystemDriver(t.root), { removeUntagged: true, dryRun: true });
  const berthDeleted = berth.manifestsDeleted.map((m) => m.digest);
  assert.ok(!berthDeleted.includes(f!.c1.digest as never));
  assert.ok(eligible.includes(f!.a2.digest), 'distribution also deletes the retagged manifest');
  // Recorded 2.8 behaviour: it would break the tagged index `multi` (its untagged children go) and drop
  // the signature of the kept image v1 and the attestation of that signature.
  for (const d of [f!.c1.digest, f!.c2.digest, sha256(f!.sigA1), sha256(f!.att)]) {
    assert.ok(eligible.includes(d), `distribution 2.8 lists ${d}`);
    assert.ok(!berthDeleted.includes(d as never), `berth keeps ${d}`);
  }
  tc.diagnostic(`distribution 2.8: ${eligible.split('\n').length} manifests eligible; berth: ${berthDeleted.length}`);
});

test('`berth registry garbage-collect` CLI while the registry serves read-only', { timeout: 60_000 }, async () => {
  const t = await startBerth();
  let f: Awaited<ReturnType<typeof fixture>>;
  try {
    f = await fixture(t.url);
  } finally {
    await t.close();
  }
  const ro = await startBerth({ root: t.root, readOnly: true });
  try {
    const dir = tempDir('gc-cli-');
    const cfg = path.join(dir, 'config.yml');
    fs.writeFileSync(cfg, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${t.root}\n`);
    const dry = spawnSync(process.execPath, ['dist/src/cmd/berth.js', 'registry', 'garbage-collect', '-d', '-m', cfg], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /^app$/m);
    assert.match(dry.stdout, /app: marking manifest sha256:/);
    assert.match(dry.stdout, /\d+ blobs marked, \d+ blobs and 2 manifests eligible for deletion/);
    assert.ok(blobExists(t.root, sha256(f!.orphan)));
    // pulls keep working during and after a real run; pushes are refused (read-only)
    const pulls = Promise.all([pullAll(ro.url, 'app', 'v1'), pullAll(ro.url, 'other', 'latest')]);
    const real = spawnSync(process.execPath, ['dist/src/cmd/berth.js', 'registry', 'garbage-collect', '-m', cfg], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(real.status, 0, real.stderr);
    await pulls;
    assert.equal(blobExists(t.root, sha256(f!.orphan)), false);
    for (const ref of ['v1', 'v2', 'multi']) await pullAll(ro.url, 'app', ref);
    assert.equal((await req('POST', `${ro.url}/v2/app/blobs/uploads/`)).status, 405);
    const bad = spawnSync(process.execPath, ['dist/src/cmd/berth.js', 'registry', 'garbage-collect'], {
      encoding: 'utf8',
    });
    assert.equal(bad.status, 1);
  } finally {
    await ro.close();
  }
});

test('online GC in the server: a blob pushed while marking survives the sweep and its manifest lands', {
  timeout: 60_000,
}, async () => {
  const t = await startBerth();
  try {
    const f = await fixture(t.url);
    const fresh = layer('pushed-during-gc');
    let push: Promise<void> | undefined;
    const app = t.app!;
    const r = await app.collectGarbage({
      removeUntagged: true,
      emit: (l) => {
        // the first marking line: push a new image's blobs while the mark runs
        if (!push && l.startsWith('app: marking')) {
          push = (async () => {
            assert.equal((await pushBlob(t.url, 'app', fresh)).status, 201);
          })();
        }
      },
    });
    await push;
    assert.ok(!r.blobsDeleted.includes(sha256(fresh) as never), 'a blob pushed during the mark is kept');
    assert.ok(r.blobsDeleted.includes(sha256(f.orphan) as never));
    const cfg = configBlob();
    assert.equal((await pushBlob(t.url, 'app', cfg)).status, 201);
    const m = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: desc(OCI_CONFIG, cfg),
        layers: [desc(OCI_LAYER_GZIP, fresh)],
      }),
    );
    await put(t.url, 'app', 'fresh', m);
    await pullAll(t.url, 'app', 'fresh');
    await pullAll(t.url, 'app', 'v1');
  } finally {
    await t.close();
  }
});

test('grace period: content younger than --grace is never removed', { timeout: 30_000 }, async () => {
  const t = await startBerth();
  try {
    const f = await fixture(t.url);
    const r = await garbageCollect(new FilesystemDriver(t.root), { removeUntagged: true, graceMs: 3600_000 });
    assert.deepEqual([r.blobsDeleted.length, r.manifestsDeleted.length, r.layerLinksDeleted.length], [0, 0, 0]);
    assert.ok(blobExists(t.root, sha256(f.orphan)));
  } finally {
    await t.close();
  }
});
