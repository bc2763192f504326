// Shared test plumbing: start berth registry (in-process) or Debian's
// docker-registry 2.8 (a child process) on 127.0.0.1 with a temp root, a tiny
// HTTP client, and fixture builders (gzip tar layer, configs, manifests).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { configFromDocument } from '../../src/registry/config.js';
import { type RegistryApp, startRegistry } from '../../src/registry/server.js';
import { FilesystemDriver } from '../../src/registry/storage/index.js';

export interface Target {
  name: 'berth' | 'distribution';
  url: string;
  root: string;
  close(): Promise<void>;
  /** The in-process app (berth only). */
  app?: RegistryApp;
  /** berth's debug server (http.debug.addr). */
  debugUrl?: string;
}

const created: string[] = [];
const children = new Set<ChildProcess>();
process.once('exit', () => {
  // never leave a docker-registry behind, even when a test run is cut short
  for (const c of children) c.kill('SIGKILL');
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGPIPE', 'SIGHUP'] as const) {
  process.once(sig, () => process.exit(1));
}

/** A temp directory removed when the test process exits. */
export function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(d);
  return d;
}

export const haveDistribution = fs.existsSync('/usr/bin/docker-registry');
export const haveSkopeo = spawnSync('skopeo', ['--version']).status === 0;

export async function startBerth(
  opts: {
    root?: string;
    deleteEnabled?: boolean;
    readOnly?: boolean;
    accessLog?: (l: string) => void;
    /** Extra top-level config sections (auth, proxy, …) merged into the document. */
    extra?: Record<string, unknown>;
    /** Extra keys of the `http` section (debug, tls). */
    http?: Record<string, unknown>;
  } = {},
): Promise<Target> {
  const root = opts.root ?? tempDir('berth-reg-');
  const cfg = configFromDocument({
    ...opts.extra,
    version: '0.1',
    storage: {
      filesystem: { rootdirectory: root },
      delete: { enabled: opts.deleteEnabled ?? true },
      maintenance: { uploadpurging: { enabled: false }, readonly: { enabled: opts.readOnly ?? false } },
    },
    http: { addr: '127.0.0.1:0', ...opts.http },
  });
  const r = await startRegistry(cfg, {
    driver: new FilesystemDriver(root),
    ...(opts.accessLog ? { accessLog: opts.accessLog } : {}),
  });
  return {
    name: 'berth',
    url: r.url,
    root,
    close: () => r.close(),
    app: r.app,
    ...(r.debugUrl ? { debugUrl: r.debugUrl } : {}),
  };
}

export async function startDistribution(
  opts: { root?: string; deleteEnabled?: boolean; extraYaml?: string[] } = {},
): Promise<Target> {
  const root = opts.root ?? tempDir('dist-reg-');
  const dir = tempDir('dist-cfg-');
  const cfgPath = path.join(dir, 'config.yml');
  fs.writeFileSync(
    cfgPath,
    [
      'version: 0.1',
      'log:',
      '  level: info',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${root}`,
      '  delete:',
      `    enabled: ${opts.deleteEnabled ?? true}`,
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      '  addr: 127.0.0.1:0',
      '  secret: berth-test-secret',
      ...(opts.extraYaml ?? []),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', cfgPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`docker-registry did not start: ${buf}`));
    }, 15_000);
    const onData = (d: Buffer) => {
      buf += d.toString();
      const m = /listening on (127\.0\.0\.1:\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}`);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (c) => {
      clearTimeout(timer);
      reject(new Error(`docker-registry exited ${c}: ${buf}`));
    });
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  // keep draining its output
  child.stdout!.resume();
  child.stderr!.resume();
  return {
    name: 'distribution',
    url,
    root,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export interface Resp {
  status: number;
  headers: Headers;
  body: Buffer;
  // biome-ignore lint/suspicious/noExplicitAny: tests probe arbitrary JSON bodies
  json(): any;
}

export async function req(
  method: string,
  url: string,
  opts: { headers?: Record<string, string>; body?: Buffer | string } = {},
): Promise<Resp> {
  const r = await fetch(url, {
    method,
    headers: opts.headers ?? {},
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    redirect: 'manual',
  });
  const body = Buffer.from(await r.arrayBuffer());
  return {
    status: r.status,
    headers: r.headers,
    body,
    json: () => JSON.parse(body.toString('utf8')),
  };
}

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A one-file ustar archive, gzipped (like the conformance suite's layer). */
export function gzipTar(name: string, content: Buffer | string): Buffer {
  const data = Buffer.from(content);
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  h.write(`${(0).toString(8).padStart(11, '0')}\0`, 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return gzipSync(Buffer.concat([h, data, pad, Buffer.alloc(1024)]));
}

export function configBlob(): Buffer {
  return Buffer.from(
    JSON.stringify(
      {
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [] },
        author: randomBytes(8).toString('hex'),
      },
      null,
      '\t',
    ),
  );
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

export function desc(mediaType: string, b: Buffer, extra: Record<string, unknown> = {}) {
  return { mediaType, digest: sha256(b), size: b.length, ...extra };
}

/** Pushes a blob with POST + PUT ?digest=. */
export async function pushBlob(
  base: string,
  name: string,
  blob: Buffer,
  headers: Record<string, string> = {},
): Promise<Resp> {
  const post = await req('POST', `${base}/v2/${name}/blobs/uploads/`, { headers });
  if (post.status !== 202) throw new Error(`POST upload: ${post.status} ${post.body}`);
  const loc = new URL(post.headers.get('location')!, base);
  loc.searchParams.set('digest', sha256(blob));
  return req('PUT', loc.toString(), {
    headers: { 'Content-Type': 'application/octet-stream', ...headers },
    body: blob,
  });
}

export async function pushManifest(
  base: string,
  name: string,
  ref: string,
  m: Buffer,
  type = OCI_MANIFEST,
  headers: Record<string, string> = {},
): Promise<Resp> {
  return req('PUT', `${base}/v2/${name}/manifests/${ref}`, { headers: { 'Content-Type': type, ...headers }, body: m });
}

/** Every file under `dir` (relative path → contents), for tree comparisons. */
export function readTree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(dir, p), fs.readFileSync(p));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/** Pushes a one-layer OCI image (config + layer + manifest) and returns what a pull must find. */
export async function pushSimpleImage(
  base: string,
  name: string,
  tag: string,
  layerContent: Buffer | string,
  headers: Record<string, string> = {},
): Promise<{ manifest: Buffer; digest: string; config: Buffer; layer: Buffer }> {
  const config = configBlob();
  const layer = gzipTar('data.bin', layerContent);
  for (const b of [config, layer]) {
    const r = await pushBlob(base, name, b, headers);
    if (r.status !== 201) throw new Error(`push blob: ${r.status} ${r.body}`);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: desc(OCI_CONFIG, config),
      layers: [desc(OCI_LAYER_GZIP, layer)],
    }),
  );
  const r = await pushManifest(base, name, tag, manifest, OCI_MANIFEST, headers);
  if (r.status !== 201) throw new Error(`push manifest: ${r.status} ${r.body}`);
  return { manifest, digest: sha256(manifest), config, layer };
}

/** Runs skopeo asynchronously (berth may serve from this very event loop). */
export function skopeoAsync(args: string[], timeoutMs = 120_000): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('skopeo', ['--insecure-policy', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stderr: err });
    });
  });
}
