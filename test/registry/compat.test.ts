// Storage compatibility with distribution 2.8, both ways, through a real
// client (skopeo): docker-registry writes a root and berth serves it byte for
// byte; berth writes a root and docker-registry serves it; the same pushes into
// two fresh roots give the same files with the same link contents.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  configBlob,
  desc,
  gzipTar,
  haveDistribution,
  haveSkopeo,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_LAYER_GZIP,
  OCI_MANIFEST,
  readTree,
  req,
  sha256,
  startBerth,
  startDistribution,
  tempDir,
} from './helpers.js';

/** An OCI image layout with a two-platform index tagged `v1`. */
function buildLayout(dir: string): { index: Buffer; blobs: Map<string, Buffer> } {
  const blobs = new Map<string, Buffer>();
  const add = (b: Buffer) => {
    blobs.set(sha256(b), b);
    return b;
  };
  const shared = add(gzipTar('etc/shared.txt', 'shared layer\n'));
  const manifests = ['amd64', 'arm64'].map((arch) => {
    const cfg = add(
      Buffer.from(
        JSON.stringify({
          architecture: arch,
          os: 'linux',
          rootfs: { type: 'layers', diff_ids: [] },
          x: configBlob().toString(),
        }),
      ),
    );
    const own = add(gzipTar(`bin/${arch}`, Buffer.alloc(70_000 + arch.length * 1000, arch)));
    const m = add(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: desc(OCI_CONFIG, cfg),
          layers: [desc(OCI_LAYER_GZIP, shared), desc(OCI_LAYER_GZIP, own)],
        }),
      ),
    );
    return desc(OCI_MANIFEST, m, { platform: { architecture: arch, os: 'linux' } });
  });
  const index = add(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests })));
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const [d, b] of blobs) fs.writeFileSync(path.join(dir, 'blobs', 'sha256', d.slice(7)), b);
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [desc(OCI_INDEX, index, { annotations: { 'org.opencontainers.image.ref.name': 'v1' } })],
    }),
  );
  return { index, blobs };
}

/** Runs skopeo asynchronously (berth serves from this very event loop). */
function skopeo(...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('skopeo', ['--insecure-policy', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`skopeo ${args.join(' ')} exited ${code}: ${err}`));
    });
  });
}

const hostOf = (url: string) => new URL(url).host;

function pushWithSkopeo(layout: string, url: string, repo: string): Promise<void> {
  return skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${hostOf(url)}/${repo}:v1`);
}

function pullWithSkopeo(url: string, repo: string, out: string): Promise<void> {
  return skopeo('copy', '--all', '--src-tls-verify=false', `docker://${hostOf(url)}/${repo}:v1`, `oci:${out}:v1`);
}

function assertSameBlobs(out: string, blobs: Map<string, Buffer>): void {
  for (const [d, b] of blobs) {
    const p = path.join(out, 'blobs', 'sha256', d.slice(7));
    assert.ok(fs.existsSync(p), `pulled layout lacks ${d}`);
    assert.ok(fs.readFileSync(p).equals(b), `bytes of ${d}`);
  }
}

/** The registry tree without upload sessions (their ids are random by design). */
function comparableTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [p, b] of readTree(root)) {
    if (p.includes('/_uploads/')) continue;
    out.set(p, b.length < 200 ? b.toString('utf8') : sha256(b));
  }
  return out;
}

const skip = !haveDistribution || !haveSkopeo ? 'needs docker-registry and skopeo' : false;

describe('storage compatibility with distribution 2.8', { skip, timeout: 110_000 }, () => {
  let layout: string;
  let fixture: { index: Buffer; blobs: Map<string, Buffer> };
  before(() => {
    layout = tempDir('oci-layout-');
    fixture = buildLayout(layout);
  });

  test('docker-registry writes, berth serves the same root byte-identical', async () => {
    const root = tempDir('compat-d2b-');
    const dist = await startDistribution({ root });
    try {
      await pushWithSkopeo(layout, dist.url, 'compat/img');
    } finally {
      await dist.close();
    }
    const berth = await startBerth({ root });
    try {
      const m = await req('GET', `${berth.url}/v2/compat/img/manifests/v1`, { headers: { Accept: OCI_INDEX } });
      assert.equal(m.status, 200);
      assert.ok(m.body.equals(fixture.index), 'index bytes');
      assert.equal(m.headers.get('docker-content-digest'), sha256(fixture.index));
      assert.deepEqual((await req('GET', `${berth.url}/v2/compat/img/tags/list`)).json(), {
        name: 'compat/img',
        tags: ['v1'],
      });
      assert.deepEqual((await req('GET', `${berth.url}/v2/_catalog`)).json(), { repositories: ['compat/img'] });
      const out = tempDir('pulled-');
      await pullWithSkopeo(berth.url, 'compat/img', out);
      assertSameBlobs(out, fixture.blobs);
    } finally {
      await berth.close();
    }
  });

  test('berth writes, docker-registry serves the same root byte-identical', async () => {
    const root = tempDir('compat-b2d-');
    const berth = await startBerth({ root });
    try {
      await pushWithSkopeo(layout, berth.url, 'compat/img');
    } finally {
      await berth.close();
    }
    const dist = await startDistribution({ root });
    try {
      const m = await req('GET', `${dist.url}/v2/compat/img/manifests/v1`, { headers: { Accept: OCI_INDEX } });
      assert.equal(m.status, 200);
      assert.ok(m.body.equals(fixture.index), 'index bytes');
      assert.deepEqual((await req('GET', `${dist.url}/v2/compat/img/tags/list`)).json(), {
        name: 'compat/img',
        tags: ['v1'],
      });
      const out = tempDir('pulled-');
      await pullWithSkopeo(dist.url, 'compat/img', out);
      assertSameBlobs(out, fixture.blobs);
    } finally {
      await dist.close();
    }
  });

  test('the same push gives the same tree (files and link contents) in both', async () => {
    const rootB = tempDir('tree-berth-');
    const rootD = tempDir('tree-dist-');
    const berth = await startBerth({ root: rootB });
    const dist = await startDistribution({ root: rootD });
    try {
      await pushWithSkopeo(layout, berth.url, 'tree/img');
      await pushWithSkopeo(layout, dist.url, 'tree/img');
    } finally {
      await berth.close();
      await dist.close();
    }
    const tb = comparableTree(rootB);
    const td = comparableTree(rootD);
    assert.deepEqual([...tb.keys()].sort(), [...td.keys()].sort());
    for (const [p, v] of td) assert.equal(tb.get(p), v, p);
    // link files hold the bare digest, no newline
    const link = [...tb.entries()].find(([p]) => p.endsWith('/current/link'))!;
    assert.equal(link[1], sha256(fixture.index));
    // upload sessions are gone once complete (the directory may remain, empty)
    for (const root of [rootB, rootD]) {
      const up = path.join(root, 'docker/registry/v2/repositories/tree/img/_uploads');
      if (fs.existsSync(up)) assert.deepEqual(fs.readdirSync(up), []);
    }
  });

  after(() => {});
});
