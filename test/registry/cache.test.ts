// The in-process caches (storage/linkcache.ts) never serve what the tree no
// longer says: a write by a SECOND process sharing the root (docker-registry
// 2.8, the offline garbage collector, a direct file change — including an
// in-place rewrite of the same size within the same timestamp tick) is seen by
// the next request; this process's own tag moves, deletes and online GC are
// seen immediately. Also: the blob GET fast path (ranges, a client that goes
// away mid-body leaks no file descriptor), and the durable tag link.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { garbageCollect } from '../../src/registry/gc.js';
import type { FileVersion, VersionedFiles } from '../../src/registry/storage/driver.js';
import { FilesystemDriver } from '../../src/registry/storage/index.js';
import { LinkCache, RACY_MS } from '../../src/registry/storage/linkcache.js';
import {
  configBlob,
  desc,
  gzipTar,
  haveDistribution,
  OCI_CONFIG,
  OCI_LAYER_GZIP,
  OCI_MANIFEST,
  pushBlob,
  pushManifest,
  pushSimpleImage,
  req,
  sha256,
  startBerth,
  startDistribution,
} from './helpers.js';

const V2 = 'docker/registry/v2/repositories';
const tagLink = (root: string, name: string, tag: string) =>
  path.join(root, V2, name, '_manifests/tags', tag, 'current/link');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function getDigest(base: string, name: string, ref: string): Promise<{ status: number; digest: string | null }> {
  const r = await req('GET', `${base}/v2/${name}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
  return { status: r.status, digest: r.status === 200 ? sha256(r.body) : null };
}

/** A second manifest over the same blobs as `img` (differs in an annotation). */
function variant(img: { config: Buffer; layer: Buffer }, n: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: desc(OCI_CONFIG, img.config),
      layers: [desc(OCI_LAYER_GZIP, img.layer)],
      annotations: { n: String(n) },
    }),
  );
}

describe('link cache: unit', () => {
  /** Files whose version the test controls: a rewrite may keep the version (a coarse clock). */
  function fakeFiles() {
    const files = new Map<string, { data: string; v: FileVersion }>();
    let reads = 0;
    const vf: VersionedFiles = {
      locate: (p) => p,
      versionSync: (h) => (files.has(h) ? { ...files.get(h)!.v } : null),
      readVersioned: async (h) => {
        reads++;
        const f = files.get(h);
        return f ? { data: Buffer.from(f.data), version: { ...f.v } } : undefined;
      },
    };
    return { files, vf, reads: () => reads };
  }
  const A = `sha256:${'a'.repeat(64)}`;
  const B = `sha256:${'b'.repeat(64)}`;

  test('a rewrite within the timestamp tick of the read is not missed (racily clean entries are re-read)', async () => {
    const { files, vf, reads } = fakeFiles();
    const now = Date.now();
    const v = { ino: 1, size: A.length, mtimeMs: now, ctimeMs: now };
    files.set('/l', { data: A, v });
    const c = new LinkCache(vf);
    assert.equal(await c.read('/l'), A);
    files.set('/l', { data: B, v }); // same inode, size, mtime, ctime
    assert.equal(await c.read('/l'), B); // re-read: the entry was racy
    assert.equal(reads(), 2);
  });

  test('a clean entry is answered by one version check; any version change or removal is seen', async () => {
    const { files, vf, reads } = fakeFiles();
    const old = Date.now() - 10 * RACY_MS;
    files.set('/l', { data: A, v: { ino: 1, size: A.length, mtimeMs: old, ctimeMs: old } });
    const c = new LinkCache(vf);
    assert.equal(await c.read('/l'), A);
    assert.equal(await c.read('/l'), A);
    assert.equal(reads(), 1);
    files.set('/l', { data: B, v: { ino: 1, size: B.length, mtimeMs: old, ctimeMs: old + 1 } });
    assert.equal(await c.read('/l'), B);
    files.set('/l', { data: A, v: { ino: 2, size: A.length, mtimeMs: old, ctimeMs: old + 1 } });
    assert.equal(await c.read('/l'), A);
    files.delete('/l');
    assert.equal(await c.read('/l'), undefined);
    files.set('/l', { data: 'not a digest', v: { ino: 3, size: 12, mtimeMs: old, ctimeMs: old } });
    assert.equal(await c.read('/l'), undefined);
  });
});

describe('link cache: this process', () => {
  test('a tag moved by this process is served at once; an untagged or deleted manifest is gone at once', async () => {
    const b = await startBerth();
    try {
      const img = await pushSimpleImage(b.url, 'c/own', 'v1', 'one');
      assert.equal((await getDigest(b.url, 'c/own', 'v1')).digest, img.digest);
      assert.equal((await getDigest(b.url, 'c/own', 'v1')).digest, img.digest); // cached now
      const m2 = variant(img, 2);
      assert.equal((await pushManifest(b.url, 'c/own', 'v1', m2)).status, 201);
      assert.equal((await getDigest(b.url, 'c/own', 'v1')).digest, sha256(m2));
      assert.equal((await req('DELETE', `${b.url}/v2/c/own/manifests/v1`)).status, 202);
      assert.equal((await getDigest(b.url, 'c/own', 'v1')).status, 404);
      assert.equal((await getDigest(b.url, 'c/own', img.digest)).status, 200);
      assert.equal((await req('DELETE', `${b.url}/v2/c/own/manifests/${img.digest}`)).status, 202);
      assert.equal((await getDigest(b.url, 'c/own', img.digest)).status, 404);
      // re-pushing the same bytes under the same tag brings both back
      assert.equal((await pushManifest(b.url, 'c/own', 'v1', img.manifest)).status, 201);
      assert.equal((await getDigest(b.url, 'c/own', 'v1')).digest, img.digest);
    } finally {
      await b.close();
    }
  });

  test('online garbage collection: a cached manifest it removes is gone, the caches are dropped', async () => {
    const b = await startBerth();
    try {
      const img = await pushSimpleImage(b.url, 'c/gc', 'keep', 'kept');
      const m2 = variant(img, 7);
      assert.equal((await pushManifest(b.url, 'c/gc', 'old', m2)).status, 201);
      assert.equal((await getDigest(b.url, 'c/gc', sha256(m2))).status, 200); // cached by digest
      assert.equal((await req('DELETE', `${b.url}/v2/c/gc/manifests/old`)).status, 202); // now untagged
      assert.ok((b.app!.storage.blobs.cache?.size.links ?? 0) > 0);
      const r = await b.app!.collectGarbage({ removeUntagged: true });
      assert.deepEqual(
        r.manifestsDeleted.map((m) => m.digest),
        [sha256(m2)],
      );
      assert.deepEqual(b.app!.storage.blobs.cache?.size, { links: 0, blobs: 0 });
      assert.equal((await getDigest(b.url, 'c/gc', sha256(m2))).status, 404);
      assert.equal((await getDigest(b.url, 'c/gc', 'keep')).digest, img.digest);
    } finally {
      await b.close();
    }
  });

  test('a tag PUT leaves the current link durable and the tree readable by a fresh process', async () => {
    const b = await startBerth();
    try {
      const img = await pushSimpleImage(b.url, 'c/dur', 'v1', 'durable');
      assert.equal(fs.readFileSync(tagLink(b.root, 'c/dur', 'v1'), 'utf8'), img.digest);
      // no temp files left next to the links
      const dir = path.dirname(tagLink(b.root, 'c/dur', 'v1'));
      assert.deepEqual(fs.readdirSync(dir), ['link']);
    } finally {
      await b.close();
    }
  });
});

describe('link cache: a second process', () => {
  test('a direct in-place rewrite of a tag link (same inode, same size) is seen, even within one tick', async () => {
    const b = await startBerth();
    try {
      const img = await pushSimpleImage(b.url, 'c/file', 'v1', 'file');
      const m2 = variant(img, 3);
      assert.equal((await pushManifest(b.url, 'c/file', sha256(m2), m2)).status, 201); // by digest: untagged
      const link = tagLink(b.root, 'c/file', 'v1');
      const ino = fs.statSync(link).ino;
      // Racy: read right after a write, then rewritten in place immediately (distribution's writer).
      assert.equal((await getDigest(b.url, 'c/file', 'v1')).digest, img.digest);
      fs.writeFileSync(link, sha256(m2));
      assert.equal(fs.statSync(link).ino, ino);
      assert.equal((await getDigest(b.url, 'c/file', 'v1')).digest, sha256(m2));
      // Clean: cached long after the write, then rewritten in place.
      await sleep(RACY_MS + 50);
      assert.equal((await getDigest(b.url, 'c/file', 'v1')).digest, sha256(m2));
      assert.equal((await getDigest(b.url, 'c/file', 'v1')).digest, sha256(m2));
      fs.writeFileSync(link, img.digest);
      assert.equal((await getDigest(b.url, 'c/file', 'v1')).digest, img.digest);
      // Even an in-place rewrite that restores the old mtime is caught by ctime.
      await sleep(RACY_MS + 50);
      assert.equal((await getDigest(b.url, 'c/file', 'v1')).digest, img.digest);
      const st = fs.statSync(link);
      fs.writeFileSync(link, sha256(m2));
      fs.utimesSync(link, st.atime, st.mtime);
      assert.equal((await getDigest(b.url, 'c/file', 'v1')).digest, sha256(m2));
      // Removed by hand: gone.
      fs.rmSync(path.dirname(path.dirname(link)), { recursive: true });
      assert.equal((await getDigest(b.url, 'c/file', 'v1')).status, 404);
    } finally {
      await b.close();
    }
  });

  test('the offline garbage collector (another driver, another cache) removing a cached manifest is seen', async () => {
    const b = await startBerth();
    try {
      const img = await pushSimpleImage(b.url, 'c/off', 'keep', 'off');
      const m2 = variant(img, 9);
      assert.equal((await pushManifest(b.url, 'c/off', sha256(m2), m2)).status, 201);
      assert.equal((await getDigest(b.url, 'c/off', sha256(m2))).status, 200);
      await sleep(RACY_MS + 50);
      assert.equal((await getDigest(b.url, 'c/off', sha256(m2))).status, 200); // clean cache entry
      const r = await garbageCollect(new FilesystemDriver(b.root), { removeUntagged: true });
      assert.equal(r.manifestsDeleted.length, 1);
      assert.equal((await getDigest(b.url, 'c/off', sha256(m2))).status, 404);
      assert.equal((await getDigest(b.url, 'c/off', 'keep')).digest, img.digest);
    } finally {
      await b.close();
    }
  });

  test('docker-registry 2.8 on the same root: its tag moves, deletes and blob unlinks are seen', {
    skip: !haveDistribution,
    timeout: 60_000,
  }, async () => {
    const b = await startBerth();
    const d = await startDistribution({ root: b.root });
    try {
      const img = await pushSimpleImage(b.url, 'c/two', 'v1', 'shared');
      const m2 = variant(img, 4);
      const m3 = variant(img, 5);
      for (let round = 0; round < 2; round++) {
        // round 0: berth's entries are racy (just written); round 1: clean (older than RACY_MS)
        assert.equal((await getDigest(b.url, 'c/two', 'v1')).digest, img.digest);
        if (round === 1) {
          await sleep(RACY_MS + 50);
          assert.equal((await getDigest(b.url, 'c/two', 'v1')).digest, img.digest);
        }
        // docker-registry rewrites the link file in place (same inode, same size)
        assert.equal((await pushManifest(d.url, 'c/two', 'v1', m2)).status, 201);
        assert.equal((await getDigest(b.url, 'c/two', 'v1')).digest, sha256(m2));
        assert.equal((await pushManifest(d.url, 'c/two', 'v1', img.manifest)).status, 201);
        assert.equal((await getDigest(b.url, 'c/two', 'v1')).digest, img.digest);
      }
      // deleted by docker-registry (revision link and the tags pointing at it)
      assert.equal((await pushManifest(d.url, 'c/two', 'v3', m3)).status, 201);
      assert.equal((await getDigest(b.url, 'c/two', 'v3')).digest, sha256(m3));
      assert.equal((await req('DELETE', `${d.url}/v2/c/two/manifests/${sha256(m3)}`)).status, 202);
      assert.equal((await getDigest(b.url, 'c/two', sha256(m3))).status, 404);
      assert.notEqual((await getDigest(b.url, 'c/two', 'v3')).status, 200);
      // a blob docker-registry unlinks from the repository cannot be referenced through berth
      const cfg = configBlob();
      const layer = gzipTar('x', 'unlinked');
      for (const blob of [cfg, layer]) assert.equal((await pushBlob(b.url, 'c/two', blob)).status, 201);
      const m4 = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: desc(OCI_CONFIG, cfg),
          layers: [desc(OCI_LAYER_GZIP, layer)],
        }),
      );
      assert.equal((await pushManifest(b.url, 'c/two', 'ok', m4)).status, 201); // caches the _layers links
      assert.equal((await req('DELETE', `${d.url}/v2/c/two/blobs/${sha256(layer)}`)).status, 202);
      const refused = await pushManifest(b.url, 'c/two', 'again', variant({ config: cfg, layer }, 6));
      assert.equal(refused.status, 400);
      assert.equal(refused.json().errors[0].code, 'MANIFEST_BLOB_UNKNOWN');
      assert.equal((await req('HEAD', `${b.url}/v2/c/two/blobs/${sha256(layer)}`)).status, 404);
    } finally {
      await d.close();
      await b.close();
    }
  });
});

describe('blob GET fast path', () => {
  test('ranges, HEAD from stat, and a client that goes away mid-body leaks no descriptor', async () => {
    const b = await startBerth();
    try {
      const big = Buffer.alloc(5 * 1024 * 1024 + 123);
      for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
      assert.equal((await pushBlob(b.url, 'c/blob', big)).status, 201);
      const u = `${b.url}/v2/c/blob/blobs/${sha256(big)}`;
      const full = await req('GET', u);
      assert.equal(full.status, 200);
      assert.ok(full.body.equals(big));
      const part = await req('GET', u, { headers: { Range: 'bytes=1048570-3145740' } });
      assert.equal(part.status, 206);
      assert.ok(part.body.equals(big.subarray(1048570, 3145741)));
      const head = await req('HEAD', u);
      assert.equal(head.headers.get('content-length'), String(big.length));
      assert.equal(head.body.length, 0);
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      const before = fds();
      for (let i = 0; i < 5; i++) {
        const ac = new AbortController();
        const r = await fetch(u, { signal: ac.signal });
        const reader = r.body!.getReader();
        await reader.read();
        ac.abort();
        await reader.cancel().catch(() => {});
      }
      await sleep(300);
      assert.ok(fds() <= before + 2, `descriptors: ${before} → ${fds()}`);
      // and the server still serves
      assert.ok((await req('GET', u)).body.equals(big));
    } finally {
      await b.close();
    }
  });
});
