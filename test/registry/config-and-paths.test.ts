// Config (distribution's YAML shape + REGISTRY_* overrides), the path specs,
// the error table, and `berth registry serve` as a process (HTTP and TLS).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { applyEnv, configFromDocument, loadConfig, parseDuration } from '../../src/registry/config.js';
import { ERROR_CODES, RegistryError } from '../../src/registry/errors.js';
import { linkContent, pathFor } from '../../src/registry/storage/paths.js';
import { tempDir } from './helpers.js';

const D = `sha256:${'ab'.repeat(32)}` as never;

test('path specs are distribution’s layout', () => {
  const hex = 'ab'.repeat(32);
  const R = '/docker/registry/v2';
  assert.equal(pathFor({ kind: 'blobData', digest: D }), `${R}/blobs/sha256/ab/${hex}/data`);
  assert.equal(
    pathFor({ kind: 'layerLink', name: 'a/b', digest: D }),
    `${R}/repositories/a/b/_layers/sha256/${hex}/link`,
  );
  assert.equal(
    pathFor({ kind: 'revisionLink', name: 'a', digest: D }),
    `${R}/repositories/a/_manifests/revisions/sha256/${hex}/link`,
  );
  assert.equal(
    pathFor({ kind: 'tagCurrentLink', name: 'a', tag: 'v1' }),
    `${R}/repositories/a/_manifests/tags/v1/current/link`,
  );
  assert.equal(
    pathFor({ kind: 'tagIndexLink', name: 'a', tag: 'v1', digest: D }),
    `${R}/repositories/a/_manifests/tags/v1/index/sha256/${hex}/link`,
  );
  assert.equal(pathFor({ kind: 'uploadData', name: 'a', id: 'u-1' }), `${R}/repositories/a/_uploads/u-1/data`);
  assert.equal(
    pathFor({ kind: 'uploadStartedAt', name: 'a', id: 'u-1' }),
    `${R}/repositories/a/_uploads/u-1/startedat`,
  );
  assert.equal(linkContent(D).toString(), D); // no trailing newline
});

test('path specs refuse anything outside the grammar', () => {
  const bad: Array<() => string> = [
    () => pathFor({ kind: 'repository', name: '../etc' }),
    () => pathFor({ kind: 'repository', name: 'a/../../b' }),
    () => pathFor({ kind: 'repository', name: 'A' }),
    () => pathFor({ kind: 'tagDir', name: 'a', tag: '../x' }),
    () => pathFor({ kind: 'tagDir', name: 'a', tag: '.hidden' }),
    () => pathFor({ kind: 'blobData', digest: 'sha256:../../x' as never }),
    () => pathFor({ kind: 'uploadDir', name: 'a', id: '../x' }),
    () => pathFor({ kind: 'uploadDir', name: 'a', id: '' }),
  ];
  for (const f of bad) assert.throws(f, RegistryError);
});

test('the error table has every spec code at its status', () => {
  const want: Record<string, number> = {
    BLOB_UNKNOWN: 404,
    BLOB_UPLOAD_INVALID: 400,
    BLOB_UPLOAD_UNKNOWN: 404,
    DIGEST_INVALID: 400,
    MANIFEST_BLOB_UNKNOWN: 400,
    MANIFEST_INVALID: 400,
    MANIFEST_UNKNOWN: 404,
    NAME_INVALID: 400,
    NAME_UNKNOWN: 404,
    SIZE_INVALID: 400,
    UNAUTHORIZED: 401,
    DENIED: 403,
    UNSUPPORTED: 405,
    TOOMANYREQUESTS: 429,
  };
  for (const [code, status] of Object.entries(want)) {
    assert.equal(ERROR_CODES[code as keyof typeof ERROR_CODES].status, status, code);
  }
});

test('defaults: :5000 from /var/lib/registry, purge on, delete off', () => {
  const c = loadConfig(undefined, {});
  assert.equal(c.http.addr, ':5000');
  assert.equal(c.storage.rootDirectory, '/var/lib/registry');
  assert.equal(c.storage.deleteEnabled, false);
  assert.equal(c.storage.readOnly, false);
  assert.deepEqual(c.storage.uploadPurging, {
    enabled: true,
    ageMs: 168 * 3600_000,
    intervalMs: 24 * 3600_000,
    dryRun: false,
  });
});

test('YAML file in distribution’s shape, with REGISTRY_* overrides', () => {
  const dir = tempDir('regcfg-');
  const f = path.join(dir, 'config.yml');
  fs.writeFileSync(
    f,
    `version: 0.1
log:
  level: debug
storage:
  filesystem:
    rootdirectory: /data/a
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: true
      age: 2h30m
      interval: 10m
      dryrun: true
    readonly:
      enabled: false
http:
  addr: 127.0.0.1:5001
  tls:
    certificate: /c.pem
    key: /k.pem
auth:
  htpasswd:
    realm: basic-realm
    path: /auth/htpasswd
proxy:
  remoteurl: https://registry-1.docker.io
  username: u
  password: p
`,
  );
  const c = loadConfig(f, {
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/data/b',
    REGISTRY_HTTP_ADDR: '0.0.0.0:6000',
    REGISTRY_STORAGE_MAINTENANCE_READONLY: '{"enabled": true}',
    REGISTRY_LOG_LEVEL: 'warn',
    OTHER: 'ignored',
  });
  assert.equal(c.storage.rootDirectory, '/data/b');
  assert.equal(c.http.addr, '0.0.0.0:6000');
  assert.equal(c.storage.readOnly, true);
  assert.equal(c.log.level, 'warn');
  assert.equal(c.storage.deleteEnabled, true);
  assert.equal(c.storage.uploadPurging.ageMs, 2.5 * 3600_000);
  assert.equal(c.storage.uploadPurging.intervalMs, 600_000);
  assert.equal(c.storage.uploadPurging.dryRun, true);
  assert.deepEqual(c.http.tls, { certificate: '/c.pem', key: '/k.pem' });
  assert.deepEqual(c.auth?.htpasswd, { realm: 'basic-realm', path: '/auth/htpasswd', anonymousread: false });
  assert.equal(c.proxy?.remoteurl, 'https://registry-1.docker.io');
  const ro = loadConfig(f, {
    REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED: 'true',
    REGISTRY_STORAGE_DELETE_ENABLED: 'false',
  });
  assert.equal(ro.storage.readOnly, true);
  assert.equal(ro.storage.deleteEnabled, false);
});

test('invalid configs are refused with clear messages', () => {
  assert.throws(() => configFromDocument({}), /version is required/);
  assert.throws(() => configFromDocument({ version: '0.2' }), /unsupported version/);
  assert.throws(() => configFromDocument({ version: '0.1', storage: { s3: {} } }), /driver "s3" is not supported/);
  assert.throws(
    () => configFromDocument({ version: '0.1', storage: { filesystem: {}, inmemory: {} } }),
    /exactly one driver/,
  );
  assert.throws(() => configFromDocument({ version: '0.1', log: { level: 'loud' } }), /invalid level/);
  assert.throws(
    () => configFromDocument({ version: '0.1', auth: { htpasswd: { realm: 'r' } } }),
    /auth.htpasswd.path is required/,
  );
  assert.throws(
    () => configFromDocument({ version: '0.1', auth: { token: { realm: 'r' } } }),
    /auth.token.service is required/,
  );
  assert.throws(() => configFromDocument({ version: '0.1', proxy: { remoteurl: 'not a url' } }), /invalid URL/);
  assert.throws(
    () => configFromDocument({ version: '0.1', http: { tls: { certificate: '/c' } } }),
    /http.tls.key is required/,
  );
  assert.throws(
    () => configFromDocument({ version: '0.1', storage: { maintenance: { uploadpurging: { age: '3 days' } } } }),
    /invalid duration/,
  );
  assert.throws(() => parseDuration('1x', 'd'));
  const raw: Record<string, unknown> = {};
  applyEnv(raw, { REGISTRY_STORAGE: 'inmemory' });
  assert.equal(configFromDocument(raw, false).storage.driver, 'inmemory');
});

function serveProcess(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['dist/src/cmd/berth.js', 'registry', 'serve', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ready = new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not start: ${buf}`));
    }, 20_000);
    child.stderr.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /url=(https?:\/\/[^\s]+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${code}: ${buf}`));
    });
  });
  const stop = () =>
    new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) return resolve(child.exitCode);
      child.once('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
  return { child, ready, stop };
}

test('`berth registry serve` with env overrides only (no file) serves HTTP', { timeout: 40_000 }, async () => {
  const root = tempDir('serve-');
  const p = serveProcess([], { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_HTTP_ADDR: '127.0.0.1:0' });
  try {
    const url = await p.ready;
    const r = await fetch(`${url}/v2/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.equal((await fetch(`${url}/debug/health`)).status, 200);
  } finally {
    assert.equal(await p.stop(), 0);
  }
});

test('`berth registry serve CONFIG` with TLS', { timeout: 40_000 }, async (t) => {
  const dir = tempDir('tls-');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const gen = spawnSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ]);
  if (gen.status !== 0) {
    t.skip('openssl unavailable');
    return;
  }
  const cfg = path.join(dir, 'config.yml');
  fs.writeFileSync(
    cfg,
    `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/root\nhttp:\n  addr: 127.0.0.1:0\n  tls:\n    certificate: ${cert}\n    key: ${key}\n`,
  );
  const p = serveProcess([cfg], {});
  try {
    const url = await p.ready;
    assert.match(url, /^https:/);
    const https = await import('node:https');
    const status = await new Promise<number>((resolve, reject) => {
      https
        .get(`${url}/v2/`, { ca: fs.readFileSync(cert) }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject);
    });
    assert.equal(status, 200);
  } finally {
    await p.stop();
  }
});

test('`berth registry serve` refuses to serve open when the configured htpasswd file is missing', {
  timeout: 40_000,
}, async () => {
  const dir = tempDir('auth-');
  const cfg = path.join(dir, 'config.yml');
  fs.writeFileSync(
    cfg,
    `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/root\nhttp:\n  addr: 127.0.0.1:0\nauth:\n  htpasswd:\n    realm: r\n    path: ${dir}/htpasswd\n`,
  );
  const r = spawnSync(process.execPath, ['dist/src/cmd/berth.js', 'registry', 'serve', cfg], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /auth\.htpasswd\.path: cannot read/);
});
