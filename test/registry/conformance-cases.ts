// The OCI distribution-spec v1.1.1 conformance cases (pull, push, content
// discovery, content management; referrers inside discovery), written from the
// case list and fixtures in the research notes (specs-and-user-needs.md §1.3-1.5),
// as target-independent workflows. `distFails` marks what distribution 2.8 is
// known not to do; those cases must still pass on berth.
import assert from 'node:assert/strict';
import {
  configBlob,
  desc,
  gzipTar,
  OCI_CONFIG,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_LAYER_GZIP,
  OCI_MANIFEST,
  pushBlob,
  pushManifest,
  type Resp,
  req,
  sha256,
} from './helpers.js';

export interface Ctx {
  url: string;
  target: 'berth' | 'distribution';
  ns: string;
  crossNs: string;
  /** Shared between the cases of one run (workflows are stateful, in order). */
  // biome-ignore lint/suspicious/noExplicitAny: free-form state shared between the cases of a run
  s: Record<string, any>;
}

export interface Case {
  workflow: 'pull' | 'push' | 'content discovery' | 'content management';
  name: string;
  /** Why distribution 2.8 fails it (the case is then an expected failure there). */
  distFails?: string;
  fn(ctx: Ctx): Promise<void>;
}

/** Error codes the conformance suite accepts in an error body (setup.go errorCodes). */
export const ACCEPTED_CODES = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'MANIFEST_UNVERIFIED',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'TAG_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
]);

const ANNOTATION = 'org.opencontainers.conformance.test';
const TYPE_A = 'application/vnd.nhl.peanut.butter.bagel';
const TYPE_B = 'application/vnd.nba.strawberry.jam.croissant';
const TYPE_INDEX = 'application/vnd.food.stand';
const DUMMY = sha256('hello world');

function status(r: Resp, ok: number[], what: string): void {
  assert.ok(
    ok.includes(r.status),
    `${what}: status ${r.status} not in [${ok}]; body ${r.body.toString().slice(0, 300)}`,
  );
}

function digestHeader(r: Resp, expected: string): void {
  const h = r.headers.get('docker-content-digest');
  if (h !== null) assert.equal(h, expected, 'Docker-Content-Digest');
}

/** The fixtures of one run: five configs, one layer, five manifests, referrer artifacts. */
export function fixtures() {
  const layer = gzipTar('test.txt', 'Conformance test file\n');
  const configs = [0, 1, 2, 3, 4].map(() => configBlob());
  const manifests = configs.map((c) =>
    Buffer.from(
      JSON.stringify(
        {
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: desc(OCI_CONFIG, c, { data: c.toString('base64'), newUnspecifiedField: 'ignored by registries' }),
          layers: [desc(OCI_LAYER_GZIP, layer)],
        },
        null,
        '\t',
      ),
    ),
  );
  const emptyLayerManifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: desc(OCI_CONFIG, configs[1]!), layers: [] }),
  );
  const emptyJson = Buffer.from('{}');
  const refBlobA = Buffer.from('NHL Peanut Butter on my NHL bagel');
  const refBlobB = Buffer.from('NBA Strawberry Jam on my NBA croissant');
  const subject = desc(OCI_MANIFEST, manifests[4]!);
  const missingSubject = desc(OCI_MANIFEST, manifests[3]!);
  const art = (o: Record<string, unknown>, annotate = true) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        ...o,
        ...(annotate ? { annotations: { [ANNOTATION]: 'test' } } : {}),
      }),
    );
  const refConfigA = art({
    config: desc(TYPE_A, refBlobA),
    layers: [desc(OCI_EMPTY, emptyJson)],
    subject,
  });
  const refConfigB = art({
    config: desc(TYPE_B, refBlobB),
    layers: [desc(OCI_EMPTY, emptyJson)],
    subject,
  });
  const refLayerA = art({
    artifactType: TYPE_A,
    config: desc(OCI_EMPTY, emptyJson),
    layers: [desc(TYPE_A, refBlobA)],
    subject,
  });
  const refLayerB = art({
    artifactType: TYPE_B,
    config: desc(OCI_EMPTY, emptyJson),
    layers: [desc(TYPE_B, refBlobB)],
    subject,
  });
  const refIndex = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      artifactType: TYPE_INDEX,
      manifests: [desc(OCI_MANIFEST, refConfigA), desc(OCI_MANIFEST, refConfigB)],
      subject,
      annotations: { [ANNOTATION]: 'test' },
    }),
  );
  const refC = art(
    {
      artifactType: TYPE_A,
      config: desc(OCI_EMPTY, emptyJson),
      layers: [desc(TYPE_A, refBlobA)],
      subject: missingSubject,
    },
    false,
  );
  const blobA = Buffer.from(Array.from({ length: 42 }, (_, i) => (i * 37 + 11) & 0xff));
  const blobB = Buffer.from(Array.from({ length: 42 }, (_, i) => (i * 53 + 7) & 0xff));
  return {
    layer,
    configs,
    manifests,
    emptyLayerManifest,
    emptyJson,
    refBlobA,
    refBlobB,
    refConfigA,
    refConfigB,
    refLayerA,
    refLayerB,
    refIndex,
    refC,
    blobA,
    blobB,
  };
}

async function teardownManifests(ctx: Ctx, digests: string[]): Promise<void> {
  for (const d of digests) {
    const r = await req('DELETE', `${ctx.url}/v2/${ctx.ns}/manifests/${d}`);
    status(r, [200, 202, 204, 404, 405], `DELETE manifest ${d}`);
  }
}
async function teardownBlobs(ctx: Ctx, digests: string[]): Promise<void> {
  for (const d of digests) {
    const r = await req('DELETE', `${ctx.url}/v2/${ctx.ns}/blobs/${d}`);
    status(r, [200, 202, 204, 404, 405], `DELETE blob ${d}`);
  }
}

export function cases(): Case[] {
  const f = fixtures();
  const B = (c: Ctx) => `${c.url}/v2/${c.ns}/blobs`;
  const M = (c: Ctx) => `${c.url}/v2/${c.ns}/manifests`;
  const U = (c: Ctx) => `${c.url}/v2/${c.ns}/blobs/uploads/`;
  const m0 = sha256(f.manifests[0]!);
  const m1 = sha256(f.manifests[1]!);
  const m2 = sha256(f.manifests[2]!);
  const m3 = sha256(f.manifests[3]!);
  const m4 = sha256(f.manifests[4]!);
  const layerD = sha256(f.layer);
  const cfg = f.configs.map(sha256);

  return [
    // ---------------- pull ----------------
    {
      workflow: 'pull',
      name: 'setup: push configs, layer, manifest by tag and by digest',
      async fn(c) {
        for (const b of [f.configs[0]!, f.configs[1]!, f.layer])
          status(await pushBlob(c.url, c.ns, b), [201], 'push blob');
        status(await pushManifest(c.url, c.ns, 'tagtest0', f.manifests[0]!), [201], 'PUT manifest by tag');
        status(await pushManifest(c.url, c.ns, m1, f.manifests[1]!), [201], 'PUT manifest by digest');
      },
    },
    {
      workflow: 'pull',
      name: 'HEAD a nonexistent blob → 404',
      async fn(c) {
        status(await req('HEAD', `${B(c)}/${DUMMY}`), [404], 'HEAD');
      },
    },
    {
      workflow: 'pull',
      name: 'HEAD an existing blob → 200 with its digest',
      async fn(c) {
        const r = await req('HEAD', `${B(c)}/${cfg[0]}`);
        status(r, [200], 'HEAD');
        digestHeader(r, cfg[0]!);
        assert.equal(r.headers.get('content-length'), String(f.configs[0]!.length));
      },
    },
    {
      workflow: 'pull',
      name: 'GET a nonexistent blob → 404',
      async fn(c) {
        status(await req('GET', `${B(c)}/${DUMMY}`), [404], 'GET');
      },
    },
    {
      workflow: 'pull',
      name: 'GET an existing blob → 200 with the bytes',
      async fn(c) {
        const r = await req('GET', `${B(c)}/${layerD}`);
        status(r, [200], 'GET');
        assert.ok(r.body.equals(f.layer));
      },
    },
    {
      workflow: 'pull',
      name: 'HEAD a nonexistent manifest → 404',
      async fn(c) {
        status(await req('HEAD', `${M(c)}/.INVALID_MANIFEST_NAME`), [404], 'HEAD');
      },
    },
    {
      workflow: 'pull',
      name: 'HEAD manifests by digest and by tag → 200',
      async fn(c) {
        for (const [ref, d] of [
          [m0, m0],
          [m1, m1],
          ['tagtest0', m0],
        ] as const) {
          const r = await req('HEAD', `${M(c)}/${ref}`, { headers: { Accept: OCI_MANIFEST } });
          status(r, [200], `HEAD ${ref}`);
          digestHeader(r, d);
        }
      },
    },
    {
      workflow: 'pull',
      name: 'GET a nonexistent manifest → 404',
      async fn(c) {
        status(await req('GET', `${M(c)}/.INVALID_MANIFEST_NAME`), [404], 'GET');
      },
    },
    {
      workflow: 'pull',
      name: 'GET manifests by digest and by tag → 200 with the exact bytes',
      async fn(c) {
        for (const [ref, body] of [
          [m0, f.manifests[0]!],
          [m1, f.manifests[1]!],
          ['tagtest0', f.manifests[0]!],
        ] as const) {
          const r = await req('GET', `${M(c)}/${ref}`, { headers: { Accept: OCI_MANIFEST } });
          status(r, [200], `GET ${ref}`);
          assert.ok(r.body.equals(body), `bytes of ${ref}`);
          assert.equal(r.headers.get('content-type'), OCI_MANIFEST);
        }
      },
    },
    {
      workflow: 'pull',
      name: 'PUT a manifest at an invalid digest reference → 400 or 404 with an accepted code',
      async fn(c) {
        const r = await req('PUT', `${M(c)}/sha256:totallywrong`, {
          headers: { 'Content-Type': OCI_MANIFEST },
          body: 'blablabla',
        });
        status(r, [400, 404], 'PUT');
        if (r.status === 400) assert.ok(ACCEPTED_CODES.has(r.json().errors[0].code), r.body.toString());
      },
    },
    {
      workflow: 'pull',
      name: 'invalid digest reference is a 400 DIGEST_INVALID (strict)',
      distFails: 'answers 400 MANIFEST_INVALID, not DIGEST_INVALID, for a malformed digest reference',
      async fn(c) {
        const r = await req('PUT', `${M(c)}/sha256:totallywrong`, {
          headers: { 'Content-Type': OCI_MANIFEST },
          body: 'blablabla',
        });
        status(r, [400], 'PUT');
        assert.equal(r.json().errors[0].code, 'DIGEST_INVALID');
      },
    },
    {
      workflow: 'pull',
      name: 'teardown: delete manifests and blobs',
      async fn(c) {
        await teardownManifests(c, [m0, m1]);
        await teardownBlobs(c, [cfg[0]!, cfg[1]!, layerD]);
      },
    },

    // ---------------- push ----------------
    {
      workflow: 'push',
      name: 'streamed upload: POST, PATCH without Content-Range, PUT ?digest',
      async fn(c) {
        const post = await req('POST', U(c));
        status(post, [202], 'POST');
        const loc = post.headers.get('location');
        assert.ok(loc, 'Location');
        const patch = await req('PATCH', new URL(loc, c.url).toString(), {
          headers: { 'Content-Type': 'application/octet-stream' },
          body: f.blobA,
        });
        status(patch, [202], 'PATCH');
        const put = new URL(patch.headers.get('location')!, c.url);
        put.searchParams.set('digest', sha256(f.blobA));
        const r = await req('PUT', put.toString());
        status(r, [201], 'PUT');
        assert.ok(r.headers.get('location'));
      },
    },
    {
      workflow: 'push',
      name: 'monolithic upload: POST ?digest with the body → 201 (or 202) and a consistent GET',
      async fn(c) {
        status(await req('GET', `${B(c)}/${cfg[1]}`), [404], 'GET before');
        const r = await req('POST', `${U(c)}?digest=${cfg[1]}`, {
          headers: { 'Content-Type': 'application/octet-stream' },
          body: f.configs[1]!,
        });
        status(r, [201, 202], 'POST');
        const g = await req('GET', `${B(c)}/${cfg[1]}`);
        status(g, r.status === 201 ? [200] : [404], 'GET after');
      },
    },
    {
      workflow: 'push',
      name: 'monolithic upload: POST then PUT ?digest with the body → 201, blob readable',
      async fn(c) {
        for (const blob of [f.configs[1]!, f.layer]) {
          const post = await req('POST', U(c));
          status(post, [202], 'POST');
          const put = new URL(post.headers.get('location')!, c.url);
          put.searchParams.set('digest', sha256(blob));
          status(
            await req('PUT', put.toString(), { headers: { 'Content-Type': 'application/octet-stream' }, body: blob }),
            [201],
            'PUT',
          );
          status(await req('GET', `${B(c)}/${sha256(blob)}`), [200], 'GET');
        }
      },
    },
    {
      workflow: 'push',
      name: 'chunked upload: an out-of-order chunk → 416',
      distFails: 'accepts the first PATCH at a non-zero Content-Range start',
      async fn(c) {
        const post = await req('POST', U(c), { headers: { 'Content-Length': '0' } });
        status(post, [202], 'POST');
        const mid = f.blobB.length / 2 + 1;
        const r = await req('PATCH', new URL(post.headers.get('location')!, c.url).toString(), {
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${mid}-${f.blobB.length - 1}` },
          body: f.blobB.subarray(mid),
        });
        status(r, [416], 'PATCH chunk 2 first');
      },
    },
    {
      workflow: 'push',
      name: 'chunked upload: chunk 1 → 202 with Range 0-<end>',
      async fn(c) {
        const post = await req('POST', U(c), { headers: { 'Content-Length': '0' } });
        status(post, [202], 'POST');
        const mid = f.blobB.length / 2 + 1;
        const r = await req('PATCH', new URL(post.headers.get('location')!, c.url).toString(), {
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${mid - 1}` },
          body: f.blobB.subarray(0, mid),
        });
        status(r, [202], 'PATCH chunk 1');
        assert.equal(r.headers.get('range'), `0-${mid - 1}`);
        c.s.chunkLoc = r.headers.get('location');
        c.s.mid = mid;
      },
    },
    {
      workflow: 'push',
      name: 'chunked upload: retrying chunk 1 → 416',
      distFails: 'does not enforce the Content-Range start on later chunks',
      async fn(c) {
        const r = await req('PATCH', new URL(c.s.chunkLoc, c.url).toString(), {
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${c.s.mid - 1}` },
          body: f.blobB.subarray(0, c.s.mid),
        });
        status(r, [416], 'PATCH chunk 1 again');
      },
    },
    {
      workflow: 'push',
      name: 'chunked upload: GET upload status → 204 with Location and Range',
      distFails: 'the session is broken by the duplicate chunk it accepted (404 BLOB_UPLOAD_INVALID)',
      async fn(c) {
        const r = await req('GET', new URL(c.s.chunkLoc, c.url).toString());
        status(r, [204], 'GET status');
        assert.ok(r.headers.get('location'));
        assert.equal(r.headers.get('range'), `0-${c.s.mid - 1}`);
        c.s.chunkLoc = r.headers.get('location');
      },
    },
    {
      workflow: 'push',
      name: 'chunked upload: chunk 2 → 202, PUT ?digest with no body → 201',
      distFails: 'the session is broken by the duplicate chunk it accepted (404 BLOB_UPLOAD_INVALID)',
      async fn(c) {
        const r = await req('PATCH', new URL(c.s.chunkLoc, c.url).toString(), {
          headers: {
            'Content-Type': 'application/octet-stream',
            'Content-Range': `${c.s.mid}-${f.blobB.length - 1}`,
          },
          body: f.blobB.subarray(c.s.mid),
        });
        status(r, [202], 'PATCH chunk 2');
        const put = new URL(r.headers.get('location')!, c.url);
        put.searchParams.set('digest', sha256(f.blobB));
        status(await req('PUT', put.toString(), { headers: { 'Content-Length': '0' } }), [201], 'PUT');
        const g = await req('GET', `${B(c)}/${sha256(f.blobB)}`);
        status(g, [200], 'GET');
        assert.ok(g.body.equals(f.blobB));
      },
    },
    {
      workflow: 'push',
      name: 'cross-repository mount: mount without from → 202 and a session',
      async fn(c) {
        const r = await req('POST', `${U(c)}?mount=${DUMMY}`);
        status(r, [202], 'POST mount');
        assert.ok(r.headers.get('location'));
      },
    },
    {
      workflow: 'push',
      name: 'cross-repository mount: mount from another repository → 201 (or 202)',
      async fn(c) {
        const d = sha256(f.blobA);
        const r = await req('POST', `${c.url}/v2/${c.crossNs}/blobs/uploads/?mount=${d}&from=${c.ns}`);
        status(r, [201, 202], 'POST mount');
        if (r.status === 201) {
          assert.equal(new URL(r.headers.get('location')!, c.url).pathname, `/v2/${c.crossNs}/blobs/${d}`);
          status(await req('GET', `${c.url}/v2/${c.crossNs}/blobs/${d}`), [200], 'GET mounted');
        } else assert.ok(r.headers.get('location'));
        if (c.target === 'berth') assert.equal(r.status, 201);
      },
    },
    {
      workflow: 'push',
      name: 'manifest upload: GET missing → 404; PUT under tags → 201 with Location; GET by digest → 200',
      async fn(c) {
        status(await req('GET', `${M(c)}/${m1}`), [404], 'GET missing');
        for (const t of ['test0', 'test1', 'test2', 'test3']) {
          const r = await pushManifest(c.url, c.ns, t, f.manifests[1]!);
          status(r, [201], `PUT ${t}`);
          assert.ok(r.headers.get('location'));
          digestHeader(r, m1);
        }
        status(await pushManifest(c.url, c.ns, 'emptylayer', f.emptyLayerManifest), [201], 'PUT empty layers');
        status(await req('GET', `${M(c)}/${m1}`, { headers: { Accept: OCI_MANIFEST } }), [200], 'GET by digest');
      },
    },
    {
      workflow: 'push',
      name: 'teardown',
      async fn(c) {
        await teardownManifests(c, [m1, sha256(f.emptyLayerManifest)]);
        await teardownBlobs(c, [sha256(f.blobA), sha256(f.blobB), cfg[1]!, layerD]);
      },
    },

    // ---------------- content discovery ----------------
    {
      workflow: 'content discovery',
      name: 'setup: image under tags test0..test3',
      async fn(c) {
        for (const b of [f.configs[2]!, f.layer]) status(await pushBlob(c.url, c.ns, b), [201], 'blob');
        for (const t of ['test0', 'test1', 'test2', 'test3'])
          status(await pushManifest(c.url, c.ns, t, f.manifests[2]!), [201], t);
      },
    },
    {
      workflow: 'content discovery',
      name: 'setup: referrers pushed before their subject carry OCI-Subject',
      distFails: 'has no referrers support (no OCI-Subject header)',
      async fn(c) {
        for (const b of [f.emptyJson, f.refBlobA, f.refBlobB, f.configs[4]!])
          status(await pushBlob(c.url, c.ns, b), [201], 'blob');
        for (const m of [f.refConfigA, f.refConfigB]) {
          const r = await pushManifest(c.url, c.ns, sha256(m), m);
          status(r, [201], 'PUT artifact');
          assert.equal(r.headers.get('oci-subject'), m4);
        }
        const ri = await pushManifest(c.url, c.ns, sha256(f.refIndex), f.refIndex, OCI_INDEX);
        status(ri, [201], 'PUT index artifact');
        assert.equal(ri.headers.get('oci-subject'), m4);
        status(await pushManifest(c.url, c.ns, m4, f.manifests[4]!), [201], 'PUT subject');
        for (const m of [f.refLayerA, f.refLayerB]) {
          const r = await pushManifest(c.url, c.ns, sha256(m), m);
          status(r, [201], 'PUT artifact');
          assert.equal(r.headers.get('oci-subject'), m4);
        }
        const rc = await pushManifest(c.url, c.ns, sha256(f.refC), f.refC);
        status(rc, [201], 'PUT C');
        assert.equal(rc.headers.get('oci-subject'), m3);
      },
    },
    {
      workflow: 'content discovery',
      name: 'GET tags/list → 200 with every tag',
      async fn(c) {
        const r = await req('GET', `${c.url}/v2/${c.ns}/tags/list`);
        status(r, [200], 'GET');
        const tags: string[] = r.json().tags;
        for (const t of ['test0', 'test1', 'test2', 'test3']) assert.ok(tags.includes(t), t);
        c.s.tags = [...tags].sort();
      },
    },
    {
      workflow: 'content discovery',
      name: 'GET tags/list → tags sorted lexically',
      distFails: 'lists tags in directory order',
      async fn(c) {
        const r = await req('GET', `${c.url}/v2/${c.ns}/tags/list`);
        const tags: string[] = r.json().tags;
        assert.deepEqual(tags, [...tags].sort());
      },
    },
    {
      workflow: 'content discovery',
      name: 'GET tags/list?n=k → exactly k tags, with a Link to the next page',
      distFails: 'ignores n on tags/list',
      async fn(c) {
        const r = await req('GET', `${c.url}/v2/${c.ns}/tags/list?n=2`);
        status(r, [200], 'GET');
        assert.deepEqual(r.json().tags, c.s.tags.slice(0, 2));
        assert.match(r.headers.get('link') ?? '', /<\/v2\/.+\/tags\/list\?last=test1&n=2>; rel="next"/);
      },
    },
    {
      workflow: 'content discovery',
      name: 'GET tags/list?n=k&last=t → at most k tags after t',
      distFails: 'ignores n and last on tags/list',
      async fn(c) {
        const r = await req('GET', `${c.url}/v2/${c.ns}/tags/list?n=2&last=test1`);
        status(r, [200], 'GET');
        const tags: string[] = r.json().tags;
        assert.ok(tags.length <= 2);
        assert.deepEqual(tags, c.s.tags.filter((t: string) => t > 'test1').slice(0, 2));
      },
    },
    {
      workflow: 'content discovery',
      name: 'referrers of an unknown digest → 200 with an empty index',
      distFails: 'has no referrers API',
      async fn(c) {
        const r = await req('GET', `${c.url}/v2/${c.ns}/referrers/${DUMMY}`);
        status(r, [200], 'GET');
        assert.equal(r.headers.get('content-type'), OCI_INDEX);
        assert.deepEqual(r.json().manifests, []);
      },
    },
    {
      workflow: 'content discovery',
      name: 'referrers of the subject → 5 descriptors with their annotation',
      distFails: 'has no referrers API',
      async fn(c) {
        const r = await req('GET', `${c.url}/v2/${c.ns}/referrers/${m4}`);
        status(r, [200], 'GET');
        const ms = r.json().manifests as Array<{
          digest: string;
          mediaType: string;
          size: number;
          artifactType?: string;
          annotations?: Record<string, string>;
        }>;
        assert.equal(ms.length, 5);
        for (const m of ms) assert.equal(m.annotations?.[ANNOTATION], 'test');
        const byDigest = new Map(ms.map((m) => [m.digest, m]));
        assert.equal(byDigest.get(sha256(f.refConfigA))?.artifactType, TYPE_A);
        assert.equal(byDigest.get(sha256(f.refLayerB))?.artifactType, TYPE_B);
        assert.equal(byDigest.get(sha256(f.refIndex))?.artifactType, TYPE_INDEX);
        assert.equal(byDigest.get(sha256(f.refIndex))?.mediaType, OCI_INDEX);
        assert.equal(byDigest.get(sha256(f.refIndex))?.size, f.refIndex.length);
      },
    },
    {
      workflow: 'content discovery',
      name: 'referrers filtered by artifactType → 2 descriptors and OCI-Filters-Applied',
      distFails: 'has no referrers API',
      async fn(c) {
        const r = await req('GET', `${c.url}/v2/${c.ns}/referrers/${m4}?artifactType=${encodeURIComponent(TYPE_A)}`);
        status(r, [200], 'GET');
        assert.equal(r.headers.get('oci-filters-applied'), 'artifactType');
        assert.equal(r.json().manifests.length, 2);
      },
    },
    {
      workflow: 'content discovery',
      name: 'referrers of a subject that was never pushed → 1 descriptor',
      distFails: 'has no referrers API',
      async fn(c) {
        const r = await req('GET', `${c.url}/v2/${c.ns}/referrers/${m3}`);
        status(r, [200], 'GET');
        const ms = r.json().manifests;
        assert.equal(ms.length, 1);
        assert.equal(ms[0].digest, sha256(f.refC));
      },
    },
    {
      workflow: 'content discovery',
      name: 'teardown',
      async fn(c) {
        await teardownManifests(c, [
          ...[f.refConfigA, f.refConfigB, f.refLayerA, f.refLayerB, f.refIndex, f.refC].map((m) => sha256(m)),
          m2,
          m4,
        ]);
        await teardownBlobs(c, [cfg[2]!, cfg[4]!, layerD, sha256(f.emptyJson), sha256(f.refBlobA), sha256(f.refBlobB)]);
      },
    },

    // ---------------- content management ----------------
    {
      workflow: 'content management',
      name: 'setup: image under one tag',
      async fn(c) {
        for (const b of [f.configs[3]!, f.layer]) status(await pushBlob(c.url, c.ns, b), [201], 'blob');
        status(await pushManifest(c.url, c.ns, 'mgmt', f.manifests[3]!), [201], 'manifest');
        const t = await req('GET', `${c.url}/v2/${c.ns}/tags/list`);
        c.s.tagCount = t.status === 200 ? t.json().tags.length : 0;
      },
    },
    {
      workflow: 'content management',
      name: 'DELETE a manifest by tag → 202 (or 400 UNSUPPORTED / 405)',
      distFails: 'answers 400 DIGEST_INVALID instead of UNSUPPORTED',
      async fn(c) {
        const r = await req('DELETE', `${M(c)}/mgmt`);
        status(r, [202, 400, 405], 'DELETE tag');
        if (r.status === 400) assert.equal(r.json().errors[0].code, 'UNSUPPORTED');
        c.s.tagDeleted = r.status === 202;
      },
    },
    {
      workflow: 'content management',
      name: 'DELETE a manifest by tag is supported (202, tag gone)',
      distFails: 'refuses tag deletion',
      async fn(c) {
        assert.equal(c.s.tagDeleted, true);
        const t = await req('GET', `${c.url}/v2/${c.ns}/tags/list`);
        assert.ok(!t.json().tags.includes('mgmt'));
        status(await req('GET', `${M(c)}/mgmt`), [404], 'GET deleted tag');
      },
    },
    {
      workflow: 'content management',
      name: 'DELETE a manifest by digest → 202; GET → 404; tags/list one fewer',
      async fn(c) {
        const r = await req('DELETE', `${M(c)}/${m3}`);
        status(r, [202, 404], 'DELETE');
        status(await req('GET', `${M(c)}/${m3}`), [404], 'GET deleted');
        const t = await req('GET', `${c.url}/v2/${c.ns}/tags/list`);
        const expected = c.s.tagCount - 1;
        if (t.status === 404) assert.equal(expected, 0);
        else {
          status(t, [200], 'tags');
          assert.equal((t.json().tags ?? []).length, expected);
        }
      },
    },
    {
      workflow: 'content management',
      name: 'DELETE blobs → 202; GET → 404',
      async fn(c) {
        for (const d of [cfg[3]!, layerD]) {
          const r = await req('DELETE', `${B(c)}/${d}`);
          status(r, [202, 404, 405], 'DELETE blob');
          if (r.status === 202) status(await req('GET', `${B(c)}/${d}`), [404], 'GET deleted blob');
        }
      },
    },
  ];
}
