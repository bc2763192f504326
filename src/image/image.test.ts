// Image store, reference store, distribution metadata, image service and
// load rejections, on a real layer store (overlay2 needs root; skipped otherwise).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { LayerStore } from '../layer/index.js';
import { makeTar } from '../layer/tar-fixture.js';
import { chainIds, type Digest, parseNormalizedReference, sha256 } from '../oci/index.js';
import { ImageService, ImageStore, imagePaths, loadImages, ReferenceStore, V2MetadataService } from './index.js';

const skip = process.getuid?.() !== 0 ? 'needs root for overlay2' : undefined;
const ref = (s: string) => parseNormalizedReference(s);

function config(diffIds: string[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-02T03:04:05.123456789Z',
      ...extra,
      rootfs: { type: 'layers', diff_ids: diffIds },
    }),
  );
}

/** A save tar (20.10 layout) from {path: content} members. */
function saveTar(members: Record<string, Buffer | string>): Buffer {
  return makeTar(Object.entries(members).map(([name, data]) => ({ name, data })));
}

describe('image metadata', { skip }, () => {
  let dir: string;
  let layers: LayerStore;
  const L1 = makeTar([{ name: 'a', data: 'one' }]);
  const L2 = makeTar([{ name: 'b', data: 'two' }]);
  const d1 = sha256(L1);
  const d2 = sha256(L2);

  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'image-test-'));
    layers = await LayerStore.open(dir);
  });
  after(async () => {
    await layers?.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  test('repositories.json: moby key forms, sorted, digest refs, conflicts', () => {
    const p = path.join(dir, 'repos-a.json');
    const rs = ReferenceStore.open(p);
    assert.equal(fs.readFileSync(p, 'utf8'), '{"Repositories":{}}');
    assert.equal(fs.statSync(p).mode & 0o777, 0o600);
    const id = `sha256:${'a'.repeat(64)}` as Digest;
    const id2 = `sha256:${'b'.repeat(64)}` as Digest;
    rs.addTag(ref('docker.io/library/busybox'), id);
    rs.addTag(ref('localhost:5000/x/y:v1'), id);
    rs.addDigest(ref(`busybox:tag@sha256:${'c'.repeat(64)}`), id);
    assert.equal(
      fs.readFileSync(p, 'utf8'),
      `{"Repositories":{"busybox":{"busybox:latest":"${id}","busybox@sha256:${'c'.repeat(64)}":"${id}"},"localhost:5000/x/y":{"localhost:5000/x/y:v1":"${id}"}}}`,
    );
    assert.throws(() => rs.addTag(ref('busybox'), id2), {
      message: `Conflict: Tag busybox:latest is already set to image ${id}, if you want to replace it, please use the force option`,
    });
    assert.throws(() => rs.addDigest(ref(`busybox@sha256:${'c'.repeat(64)}`), id2, true), {
      message: `Cannot overwrite digest sha256:${'c'.repeat(64)}`,
    });
    assert.throws(() => rs.addTag(ref('sha256:abc'), id), { message: /ambiguous tag using digest algorithm/ });
    rs.addTag(ref('busybox'), id2, true);
    assert.equal(rs.get(ref('busybox')), id2);
    assert.deepEqual(
      rs.references(id).map((r) => r.tag ?? r.digest),
      [`sha256:${'c'.repeat(64)}`, 'v1'],
    );
    assert.equal(rs.delete(ref('localhost:5000/x/y:v1')), true);
    assert.throws(() => rs.delete(ref('localhost:5000/x/y:v1')), { message: 'reference does not exist' });
    // reload gives the same bytes
    assert.equal(ReferenceStore.open(p).serialize(), fs.readFileSync(p, 'utf8'));
  });

  test('distribution metadata files as moby writes them', () => {
    const base = path.join(dir, 'distribution');
    const v2 = new V2MetadataService(base);
    const blob = `sha256:${'1'.repeat(64)}` as Digest;
    v2.add(d1, { Digest: blob, SourceRepository: 'docker.io/library/busybox', HMAC: '' });
    v2.add(d1, { Digest: blob, SourceRepository: 'docker.io/library/busybox', HMAC: '' }); // dedupes
    assert.equal(
      fs.readFileSync(path.join(base, 'v2metadata-by-diffid/sha256', d1.slice(7)), 'utf8'),
      `[{"Digest":"${blob}","SourceRepository":"docker.io/library/busybox","HMAC":""}]`,
    );
    assert.equal(fs.readFileSync(path.join(base, 'diffid-by-digest/sha256', '1'.repeat(64)), 'utf8'), d1);
    assert.equal(v2.getDiffId(blob), d1);
  });

  test('image store + service: create, sizes, prefixes, rmi rules and wording', async () => {
    const p = imagePaths(dir);
    const images = ImageStore.open(p.imagedb, layers);
    const refs = ReferenceStore.open(p.repositories);
    const svc = new ImageService(images, refs);
    const [c1, c2] = chainIds([d1, d2]) as [Digest, Digest];
    assert.throws(() => images.create(config([d1])), { message: /failed to get layer/ });
    const l1 = await layers.register(Readable.from([L1]));
    const l2 = await layers.register(Readable.from([L2]), c1);
    const rawBase = config([d1]);
    const rawChild = config([d1, d2], { comment: 'child' });
    const base = images.create(rawBase);
    const child = images.create(rawChild);
    await layers.release(l1.chainId);
    await layers.release(l2.chainId);
    assert.equal(base, sha256(rawBase));
    assert.deepEqual(fs.readFileSync(path.join(p.imagedb, 'content/sha256', base.slice(7))), rawBase);
    images.setParent(child, base);
    assert.equal(fs.readFileSync(path.join(p.imagedb, 'metadata/sha256', child.slice(7), 'parent'), 'utf8'), base);
    assert.equal(images.size(child), l1.size + l2.size);
    svc.tag(base, 'base:1');
    svc.tag(child, 'child:1');
    svc.tag('child:1', 'other/child');
    assert.match(
      fs.readFileSync(path.join(p.imagedb, 'metadata/sha256', base.slice(7), 'lastUpdated'), 'utf8'),
      /^\d{4}-\d\d-\d\dT[\d:.]+Z$/,
    );
    assert.equal(svc.getImage(child.slice(7, 15)).id, child);
    assert.throws(() => svc.getImage('nothere'), { message: 'No such image: nothere:latest' });
    assert.throws(() => svc.getImage(`sha256:${'0'.repeat(64)}`), {
      message: `No such image: sha256:${'0'.repeat(64)}`,
    });
    await assert.rejects(svc.delete(child.slice(7, 19)), {
      message: `conflict: unable to delete ${child.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`,
    });
    await assert.rejects(svc.delete(base.slice(7)), {
      message: `conflict: unable to delete ${base.slice(7, 19)} (cannot be forced) - image has dependent child images`,
    });
    assert.deepEqual(await svc.delete('other/child'), [{ Untagged: 'other/child:latest' }]);
    assert.equal(layers.has(c2), true);
    assert.deepEqual(await svc.delete('child:1'), [{ Untagged: 'child:1' }, { Deleted: child }, { Deleted: c2 }]);
    assert.equal(layers.has(c2), false);
    // reopen: restore takes the references back
    const again = ImageStore.open(p.imagedb, layers);
    assert.deepEqual(again.ids(), [base]);
    assert.equal(layers.referenceCounts(c1)?.refs, 2);
    await again.releaseAll();
    assert.deepEqual(await svc.delete('base:1'), [{ Untagged: 'base:1' }, { Deleted: base }, { Deleted: c1 }]);
    assert.equal(images.length, 0);
  });

  test('load: gzip layers, and rejections leave nothing behind', async () => {
    const root = path.join(dir, 'load');
    const p = imagePaths(root);
    const images = ImageStore.open(p.imagedb, layers);
    const refs = ReferenceStore.open(p.repositories);
    const deps = { images, refs, layers, tmpRoot: p.tmp };
    const raw = config([d1, d2]);
    const id = sha256(raw);
    const good = {
      [`${id.slice(7)}.json`]: raw,
      'l1/layer.tar': zlib.gzipSync(L1),
      'l2/layer.tar': L2,
    };
    const manifest = (m: object) =>
      JSON.stringify([
        { Config: `${id.slice(7)}.json`, RepoTags: ['t:1'], Layers: ['l1/layer.tar', 'l2/layer.tar'], ...m },
      ]);
    const bad: [string, Record<string, Buffer | string>, RegExp][] = [
      [
        'traversal',
        { ...good, 'manifest.json': manifest({ Layers: ['../l1/layer.tar', 'l2/layer.tar'] }) },
        /path traversal/,
      ],
      ['absolute', { ...good, 'manifest.json': manifest({ Config: '/etc/passwd' }) }, /absolute path/],
      [
        'missing layer',
        { ...good, 'manifest.json': manifest({ Layers: ['l1/layer.tar', 'l3/layer.tar'] }) },
        /layer l3\/layer.tar is missing/,
      ],
      ['count', { ...good, 'manifest.json': manifest({ Layers: ['l1/layer.tar'] }) }, /layers length mismatch/],
      ['diff id', { ...good, 'l2/layer.tar': L1, 'manifest.json': manifest({}) }, /invalid diffID for layer 1/],
      [
        'config digest',
        { ...good, [`${id.slice(7)}.json`]: config([d1, d2], { x: 1 }), 'manifest.json': manifest({}) },
        /digest mismatch/,
      ],
      ['null manifest', { ...good, 'manifest.json': 'null' }, /manifest cannot be null/],
    ];
    for (const [what, members, re] of bad) {
      await assert.rejects(loadImages(Readable.from([saveTar(members)]), deps), re, what);
      assert.equal(images.length, 0, what);
      assert.equal(layers.list().length, 0, `${what}: layers left behind`);
      // nothing staged survives: no layerdb write sets, no overlay2 dirs but the l/ links dir
      assert.deepEqual(
        fs.readdirSync(path.join(imagePaths(dir).layerdb, 'tmp')),
        [],
        `${what}: layerdb/tmp left behind`,
      );
      assert.deepEqual(fs.readdirSync(path.join(dir, 'overlay2')), ['l'], `${what}: overlay2 dirs left behind`);
      assert.deepEqual(fs.readdirSync(path.join(dir, 'overlay2', 'l')), [], `${what}: l/ links left behind`);
    }
    const res = await loadImages(Readable.from([saveTar({ ...good, 'manifest.json': manifest({}) })]), deps);
    assert.deepEqual(res.messages, ['Loaded image: t:1']);
    assert.equal(refs.get(ref('t:1')), id);
    assert.equal(layers.list().length, 2);
    // 25+ layout: manifest.json pointing into blobs/sha256, plus an OCI-only variant (index.json)
    const raw2 = config([d1, d2], { comment: 'oci' });
    const id2 = sha256(raw2);
    const gz1 = zlib.gzipSync(L1);
    const blobs = {
      [`blobs/sha256/${id2.slice(7)}`]: raw2,
      [`blobs/sha256/${sha256(gz1).slice(7)}`]: gz1,
      [`blobs/sha256/${d2.slice(7)}`]: L2,
    };
    const layerPaths = [`blobs/sha256/${sha256(gz1).slice(7)}`, `blobs/sha256/${d2.slice(7)}`];
    const m25 = JSON.stringify([{ Config: `blobs/sha256/${id2.slice(7)}`, RepoTags: ['oci:25'], Layers: layerPaths }]);
    const r25 = await loadImages(Readable.from([saveTar({ ...blobs, 'manifest.json': m25 })]), deps);
    assert.deepEqual(r25.images, [{ id: id2, tags: ['oci:25'] }]);
    const ociManifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: id2, size: raw2.length },
      layers: layerPaths.map((l) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: `sha256:${l.slice(13)}`,
        size: 1,
      })),
    });
    const index = JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          digest: sha256(ociManifest),
          size: ociManifest.length,
          annotations: { 'io.containerd.image.name': 'docker.io/library/oci:only' },
        },
      ],
    });
    const rOci = await loadImages(
      Readable.from([
        saveTar({
          ...blobs,
          [`blobs/sha256/${sha256(ociManifest).slice(7)}`]: ociManifest,
          'index.json': index,
          'oci-layout': '{"imageLayoutVersion":"1.0.0"}',
        }),
      ]),
      deps,
    );
    assert.deepEqual(rOci.messages, ['Loaded image: oci:only']);
    // a blob whose content does not match its name is refused
    const badBlobs = { ...blobs, [`blobs/sha256/${d2.slice(7)}`]: L1 };
    await images.delete(id2);
    refs.delete(ref('oci:25'));
    refs.delete(ref('oci:only'));
    await assert.rejects(
      loadImages(Readable.from([saveTar({ ...badBlobs, 'manifest.json': m25 })]), deps),
      /content digest mismatch|invalid diffID/,
    );
    assert.equal(images.has(id2), false);
    // shutdown never deletes layers: close() forgets, it does not release
    const before = layers.list().length;
    assert.ok(before > 0);
    images.close();
    assert.equal(layers.list().length, before);
  });
});
