// Pull and push, berth vs the reference dockerd 20.10 on the same registry.
//
// The reference runs in its own network namespace, so a registry it talks to
// listens inside that namespace; a second docker-registry process on the same
// storage root listens on 127.0.0.1 outside for berth, on the SAME port number
// (ports are per namespace), so both engines use identical references
// (`127.0.0.1:<port>/repo:tag`) and RepoDigests compare byte for byte.
//
// Shows: the same image pulled by both has the same Id, RepoDigests,
// RootFS.Layers and Size (a dockerd-built schema2 image, an OCI image, an
// OCI index); an image berth pulled and pushes to a new repository of the same
// registry keeps its manifest, config and layer digests (blobs mounted, not
// recompressed); pushed to another registry it keeps its config digest and
// diff IDs, and the reference pulls it and runs it.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RecordingProgress } from '../../src/distribution/index.js';
import { MediaType } from '../../src/oci/index.js';
import { makeFixtureImages } from '../kit/fixture-images.js';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../kit/reference-dockerd.js';
import { haveDistribution, startDistribution, type Target, tempDir } from '../registry/helpers.js';
import { buildImage, type Engine, openEngine, uploadImage, uploadIndex } from './pull-push-kit.js';

const why = !haveDistribution ? 'docker-registry missing' : referenceDockerdUnavailable();

/** docker-registry inside the reference's network namespace, on `root`, at 127.0.0.1:`port`. */
async function registryInside(d: ReferenceDockerd, root: string, port: number): Promise<() => Promise<void>> {
  const cfg = path.join(tempDir('diff-reg-cfg-'), 'config.yml');
  fs.writeFileSync(
    cfg,
    [
      'version: 0.1',
      'log:',
      '  level: info',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${root}`,
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: berth-test-secret',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = d.spawnInNetns('/usr/bin/docker-registry', ['serve', cfg]);
  process.once('exit', () => child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(
      () => reject(new Error(`registry in the reference's netns did not start: ${buf}`)),
      15_000,
    );
    const on = (c: Buffer) => {
      buf += c.toString();
      if (/listening on 127\.0\.0\.1:\d+/.test(buf)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`registry in the reference's netns exited ${code}: ${buf}`));
    });
  });
  child.stdout!.resume();
  child.stderr!.resume();
  return () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
}

/** A registry both engines reach at the same `127.0.0.1:<port>`. */
interface SharedRegistry {
  host: string;
  url: string;
  root: string;
  close(): Promise<void>;
}

async function sharedRegistry(d: ReferenceDockerd): Promise<SharedRegistry> {
  const outside: Target = await startDistribution();
  const port = Number(new URL(outside.url).port);
  const closeInside = await registryInside(d, outside.root, port);
  return {
    host: `127.0.0.1:${port}`,
    url: outside.url,
    root: outside.root,
    close: async () => {
      await closeInside();
      await outside.close();
    },
  };
}

interface RefInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Size: number;
  RootFS: { Layers: string[] };
}

async function refInspect(d: ReferenceDockerd, name: string): Promise<RefInspect> {
  return (JSON.parse(await d.dockerOk(['image', 'inspect', name])) as RefInspect[])[0]!;
}

async function getJson(url: string, accept?: string): Promise<{ body: Record<string, unknown>; digest: string }> {
  const r = await fetch(url, accept ? { headers: { accept } } : {});
  assert.equal(r.status, 200, `GET ${url}`);
  return { body: (await r.json()) as Record<string, unknown>, digest: r.headers.get('docker-content-digest') ?? '' };
}

type Manifest = { config: { digest: string }; layers: Array<{ digest: string; mediaType: string }> };

describe('pull and push vs the reference dockerd 20.10', { skip: why }, () => {
  let d: ReferenceDockerd;
  let reg: SharedRegistry;
  let other: SharedRegistry;
  let e: Engine;
  let multi: string; // 127.0.0.1:<port>/fixture/multi:v1, pushed by the reference

  before(async () => {
    d = await ReferenceDockerd.start();
    d.runInNetns('ip', ['link', 'set', 'lo', 'up']);
    reg = await sharedRegistry(d);
    other = await sharedRegistry(d);
    e = await openEngine();
    // a dockerd-built image (whiteouts, opaque dir, hard link, long name) pushed by dockerd itself
    await makeFixtureImages(d, tempDir('diff-fixtures-'));
    multi = `${reg.host}/fixture/multi:v1`;
    await d.dockerOk(['tag', 'multi:v1', multi]);
    await d.dockerOk(['push', multi], { timeoutMs: 120_000 });
    // the reference forgets everything, so that it pulls as berth does
    await d.dockerOk(['rmi', '-f', 'multi:v1', 'other/multi:latest', 'bbase:1', multi]);
    const left = (await d.dockerOk(['images', '-aq'])).trim();
    if (left) await d.dockerOk(['rmi', '-f', ...left.split('\n')]);
  });

  after(async () => {
    await e?.close();
    await other?.close();
    await reg?.close();
    await d?.destroy();
  });

  async function pullBoth(name: string) {
    await d.dockerOk(['pull', '-q', name], { timeoutMs: 120_000 });
    const res = await e.dist.pull(name);
    const ref = await refInspect(d, name);
    const mine = e.service.inspect(name);
    return { ref, mine, res };
  }

  test('the same image pulled by both: same Id, RepoTags, RepoDigests, RootFS.Layers, Size', async () => {
    // schema2 from dockerd's push
    // an OCI image and an OCI index (amd64 + arm64) uploaded as blobs
    const oci = buildImage([{ files: { 'etc/a': 'one', 'bin/b': Buffer.alloc(200_000, 7) } }, { files: { c: 'c' } }]);
    await uploadImage(reg.url, 'fixture/oci', 'v1', oci);
    const arm = buildImage([{ files: { arm: 'arm' } }], { arch: 'arm64' });
    const amd = buildImage([{ files: { amd: 'amd' } }, { files: { two: 'two' } }]);
    await uploadIndex(reg.url, 'fixture/index', 'v1', [
      { img: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { img: amd, platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    for (const name of [multi, `${reg.host}/fixture/oci:v1`, `${reg.host}/fixture/index:v1`]) {
      const { ref, mine } = await pullBoth(name);
      assert.equal(mine.Id, ref.Id, `${name}: Id`);
      assert.deepEqual(mine.RepoTags, ref.RepoTags, `${name}: RepoTags`);
      assert.deepEqual(mine.RepoDigests, ref.RepoDigests, `${name}: RepoDigests`);
      assert.deepEqual(mine.RootFS.Layers, ref.RootFS.Layers, `${name}: RootFS.Layers`);
      assert.equal(mine.Size, ref.Size, `${name}: Size`);
    }
  });

  test('pushed to a new repository of the same registry: same manifest, config and layer digests (mounted)', async () => {
    const orig = (await refInspect(d, multi)).RepoDigests[0]!.split('@')[1]!;
    const { body: origManifest } = await getJson(
      `${reg.url}/v2/fixture/multi/manifests/${orig}`,
      MediaType.dockerManifest,
    );
    const copy = `${reg.host}/copy/multi:v2`;
    e.service.tag(multi, copy);
    const p = new RecordingProgress();
    const [res] = await e.dist.push(copy, { progress: p });
    assert.equal(res!.digest, orig, 'the same manifest digest as the one dockerd pushed');
    const { body: m, digest } = await getJson(`${reg.url}/v2/copy/multi/manifests/v2`, MediaType.dockerManifest);
    assert.equal(digest, orig);
    const om = origManifest as unknown as Manifest;
    const nm = m as unknown as Manifest;
    assert.equal(nm.config.digest, om.config.digest);
    assert.deepEqual(
      nm.layers.map((l) => l.digest),
      om.layers.map((l) => l.digest),
    );
    for (const diffId of e.service.inspect(copy).RootFS.Layers) {
      assert.equal(p.statuses(diffId.slice(7, 19)).at(-1), 'Mounted from fixture/multi', `layer ${diffId}`);
    }
  });

  test('pushed to another registry: same config digest and diff IDs; the reference pulls it and runs it', async () => {
    const target = `${other.host}/elsewhere/multi:v1`;
    e.service.tag(multi, target);
    const [res] = await e.dist.push(target);
    const { body } = await getJson(
      `${other.url}/v2/elsewhere/multi/manifests/${res!.digest}`,
      MediaType.dockerManifest,
    );
    const m = body as unknown as Manifest;
    const id = e.service.inspect(multi).Id;
    assert.equal(m.config.digest, id, 'config digest kept');
    const { body: cfg } = await getJson(`${other.url}/v2/elsewhere/multi/blobs/${m.config.digest}`);
    assert.deepEqual((cfg.rootfs as { diff_ids: string[] }).diff_ids, e.service.inspect(multi).RootFS.Layers);
    for (const l of m.layers) assert.equal(l.mediaType, MediaType.dockerLayerGzip);
    // the reference pulls what berth pushed and runs it
    await d.dockerOk(['pull', '-q', target], { timeoutMs: 120_000 });
    const ref = await refInspect(d, target);
    assert.equal(ref.Id, id);
    assert.deepEqual(ref.RootFS.Layers, e.service.inspect(target).RootFS.Layers);
    // (the reference pulled this image from the first registry earlier: it lists both)
    assert.ok(ref.RepoDigests.includes(`${other.host}/elsewhere/multi@${res!.digest}`), ref.RepoDigests.join(' '));
    const run = await d.docker(['run', '--rm', '--network', 'none', target, '/bin/busybox', 'true'], {
      timeoutMs: 60_000,
    });
    assert.equal(run.code, 0, run.stderr);
    const out = await d.dockerOk(['run', '--rm', '--network', 'none', target, '/bin/busybox', 'cat', '/d/sub/g']);
    assert.equal(out, 'new\n');
  });
});
