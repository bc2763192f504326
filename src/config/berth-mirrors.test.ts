// "berth-registry-mirrors": berth's extension for mirrors of any registry
// (dockerd's registry-mirrors only applies to Docker Hub; moby#18818).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { distributionConfigFrom } from '../distribution/index.js';
import { BerthError } from '../errors/index.js';
import { DEFAULTS, parseFlags, RELOADABLE_KEYS, reloadDaemonConfig, resolveDaemonConfig, usage } from './index.js';

const F = '/etc/berth/daemon.json';
const load = (text: string) => resolveDaemonConfig(parseFlags([]), text, F);
function errOf(text: string): string {
  try {
    load(text);
  } catch (e) {
    assert.ok(e instanceof BerthError, String(e));
    return e.message;
  }
  return assert.fail('expected an error');
}

test('berth-registry-mirrors: read from daemon.json, default {}, handed to the distribution service', () => {
  assert.deepEqual(DEFAULTS.berthRegistryMirrors, {});
  const m = {
    'registry.example.com:5000': ['https://mirror-a.example.com', 'http://10.0.0.5:5000'],
    'ghcr.io': ['https://ghcr-cache.example.com/'],
    'docker.io': ['https://hub-cache.example.com'],
    '[::1]:5000': ['http://[::1]:6000'],
  };
  const { config } = load(JSON.stringify({ 'berth-registry-mirrors': m }));
  assert.deepEqual(config.berthRegistryMirrors, m);
  assert.deepEqual(distributionConfigFrom(config).mirrors, m);
  // a daemon.json key only: no flag, not in --help's flag list
  assert.throws(() => parseFlags(['--berth-registry-mirrors', 'x']), /unknown flag/);
  assert.ok(!usage().includes('berth-registry-mirror'));
});

test('berth-registry-mirrors: types and values are checked, naming the key', () => {
  assert.match(
    errOf('{"berth-registry-mirrors": ["https://m.example.com"]}'),
    /"berth-registry-mirrors" \(line 1, column \d+\) must be an object of arrays of strings/,
  );
  assert.match(
    errOf('{"berth-registry-mirrors": {"r.example.com": "https://m.example.com"}}'),
    /"berth-registry-mirrors"\.r\.example\.com \(line 1, column \d+\) must be an array of strings/,
  );
  assert.match(
    errOf('{"berth-registry-mirrors": {"r.example.com": [5000]}}'),
    /"berth-registry-mirrors"\.r\.example\.com\[0\] \(line 1, column \d+\) must be a string/,
  );
  for (const key of ['https://r.example.com', 'r.example.com/path', 'r.example.com:99999', 'bad host', '']) {
    assert.match(
      errOf(JSON.stringify({ 'berth-registry-mirrors': { [key]: ['https://m.example.com'] } })),
      /invalid berth-registry-mirrors key .*: expected a registry as in image references, host\[:port\]/,
      key,
    );
  }
  assert.match(
    errOf('{"berth-registry-mirrors": {"r.example.com": ["ftp://m.example.com"]}}'),
    /invalid berth-registry-mirrors entry "r\.example\.com": invalid mirror: unsupported scheme "ftp"/,
  );
  assert.match(
    errOf('{"berth-registry-mirrors": {"r.example.com": ["https://m.example.com/v2/x"]}}'),
    /invalid berth-registry-mirrors entry "r\.example\.com": invalid mirror: path, query, or fragment/,
  );
  assert.match(
    errOf('{"berth-registry-mirrors": {"r.example.com": ["https://u:p@m.example.com"]}}'),
    /username\/password not allowed in URI "https:\/\/u:xxxxx@m\.example\.com"/,
  );
  assert.match(errOf('{"berth-registry-mirrors": {"r.example.com": []}}'), /"r\.example\.com": no mirrors given/);
  // a near miss is suggested
  assert.match(errOf('{"berth-registry-mirror": {}}'), /did you mean "berth-registry-mirrors"\?/);
});

test('berth-registry-mirrors: SIGHUP reloads it like registry-mirrors; a bad value is refused as a whole', () => {
  assert.ok(RELOADABLE_KEYS.includes('berth-registry-mirrors'));
  const flags = parseFlags([]);
  const start = resolveDaemonConfig(flags, '{}', F).config;
  const r = reloadDaemonConfig(
    start,
    flags,
    JSON.stringify({ 'berth-registry-mirrors': { 'r.example.com': ['https://m.example.com'] } }),
    { configFile: F },
  );
  assert.deepEqual(r.changed, ['berth-registry-mirrors']);
  assert.deepEqual(r.needRestart, []);
  assert.deepEqual(r.next.berthRegistryMirrors, { 'r.example.com': ['https://m.example.com'] });
  assert.throws(
    () =>
      reloadDaemonConfig(r.next, flags, JSON.stringify({ 'berth-registry-mirrors': { 'r.example.com': ['m'] } }), {
        configFile: F,
      }),
    /invalid berth-registry-mirrors entry/,
  );
  // removed from the file: back to {}
  const back = reloadDaemonConfig(r.next, flags, '{}', { configFile: F });
  assert.deepEqual(back.changed, ['berth-registry-mirrors']);
  assert.deepEqual(back.next.berthRegistryMirrors, {});
});
