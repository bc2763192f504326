import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BerthError } from '../errors/index.js';
import {
  assertSupported,
  DEFAULT_HOST,
  DEFAULTS,
  effectiveLogLevel,
  loadDaemonConfig,
  loadDaemonConfigDetailed,
  parseDaemonHost,
  parseFlags,
  RELOADABLE_KEYS,
  reloadDaemonConfig,
  resolveDaemonConfig,
  suggestKey,
  unsupportedSettings,
  usage,
} from './index.js';

const F = '/etc/berth/daemon.json';
const PREFIX = `unable to configure the berth daemon with file ${F}: `;
const MERGED = `${PREFIX}merged configuration validation from file and command line flags failed: `;

function errOf(fn: () => unknown): BerthError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof BerthError, `expected a BerthError, got ${e}`);
    return e;
  }
  assert.fail('expected an error');
}
const flagErr = (...argv: string[]) => errOf(() => parseFlags(argv)).message;
const load = (argv: string[], text?: string) => resolveDaemonConfig(parseFlags(argv), text, F);
const fileErr = (text: string, argv: string[] = []) => errOf(() => load(argv, text)).message;

// ---- flags --------------------------------------------------------------------

test('flags: every form pflag accepts', () => {
  const p = parseFlags([
    '-H',
    'unix:///tmp/a.sock',
    '-Htcp://127.0.0.1:2375',
    '--host=fd://',
    '--host',
    'tcp://0.0.0.0:2376',
    '-D',
    '-l',
    'warn',
    '--icc=false',
    '--iptables',
    '-G=staff',
    '-p',
    '/run/b.pid',
    '-s',
    'vfs',
    '-b',
    'none',
    '--storage-opt',
    'overlay2.size=1G',
    '--storage-opt=dm.fs=ext4',
    '--insecure-registry',
    'reg:5000',
    '--insecure-registry',
    '10.0.0.0/8',
    '--registry-mirror',
    'https://mirror.example.com',
    '--label',
    'a=b',
    '--label=c=d',
    '--log-opt',
    'max-size=10m',
    '--log-opt',
    'max-file=3',
    '--default-ulimit',
    'nofile=1024:2048',
    '--default-ulimit',
    'core=-1',
    '--exec-opt',
    'native.cgroupdriver=systemd',
    '--dns',
    '8.8.8.8',
    '--dns-search',
    'example.com',
    '--dns-opt',
    'ndots:2',
    '--add-runtime',
    'crun=/usr/bin/crun',
    '--default-address-pool',
    'base=10.10.0.0/16,size=24',
    '--max-concurrent-downloads',
    '6',
    '--default-shm-size=128M',
    '--tlsverify',
    '--live-restore',
    '--userns-remap',
    'default',
    '--seccomp-profile',
    '/etc/seccomp.json',
    '--metrics-addr',
    '127.0.0.1:9323',
    '--validate',
    '--config-file',
    '/tmp/x.json',
  ]);
  const f = p.flags;
  assert.deepEqual(f.hosts, ['unix:///tmp/a.sock', 'tcp://127.0.0.1:2375', 'fd://', 'tcp://0.0.0.0:2376']);
  assert.equal(f.debug, true);
  assert.equal(f.logLevel, 'warn');
  assert.equal(f.icc, false);
  assert.equal(f.iptables, true);
  assert.equal(f.group, 'staff');
  assert.equal(f.pidfile, '/run/b.pid');
  assert.equal(f.storageDriver, 'vfs');
  assert.equal(f.bridge, 'none');
  assert.deepEqual(f.storageOpts, ['overlay2.size=1G', 'dm.fs=ext4']);
  assert.deepEqual(f.insecureRegistries, ['reg:5000', '10.0.0.0/8']);
  assert.deepEqual(f.registryMirrors, ['https://mirror.example.com']);
  assert.deepEqual(f.labels, ['a=b', 'c=d']);
  assert.deepEqual(f.logOpts, { 'max-size': '10m', 'max-file': '3' });
  assert.deepEqual(f.defaultUlimits, {
    nofile: { name: 'nofile', soft: 1024, hard: 2048 },
    core: { name: 'core', soft: -1, hard: -1 },
  });
  assert.deepEqual(f.execOpts, ['native.cgroupdriver=systemd']);
  assert.deepEqual(f.dns, ['8.8.8.8']);
  assert.deepEqual(f.dnsSearch, ['example.com']);
  assert.deepEqual(f.dnsOpts, ['ndots:2']);
  assert.deepEqual(f.runtimes, { crun: { path: '/usr/bin/crun' } });
  assert.deepEqual(f.defaultAddressPools, [{ base: '10.10.0.0/16', size: 24 }]);
  assert.equal(f.maxConcurrentDownloads, 6);
  assert.equal(f.defaultShmSize, 128 * 1024 * 1024);
  assert.equal(f.tlsverify, true);
  assert.equal(f.liveRestore, true);
  assert.equal(f.usernsRemap, 'default');
  assert.equal(p.validate, true);
  assert.equal(p.configFile, '/tmp/x.json');
  for (const k of ['hosts', 'debug', 'log-level', 'icc', 'labels', 'log-opts', 'default-ulimits', 'runtimes']) {
    assert.ok(p.setKeys.has(k), k);
  }
  assert.ok(!p.setKeys.has('tls'));
});

test('flags: combined shorthands, -v, -h, --help, --version, --', () => {
  const p = parseFlags(['-Dl', 'debug']);
  assert.equal(p.flags.debug, true);
  assert.equal(p.flags.logLevel, 'debug');
  assert.equal(parseFlags(['-v']).version, true);
  assert.equal(parseFlags(['--version']).version, true);
  assert.equal(parseFlags(['-h']).help, true);
  assert.equal(parseFlags(['--help']).help, true);
  assert.equal(parseFlags(['--debug=false']).flags.debug, false);
  assert.equal(parseFlags(['-D=false']).flags.debug, false);
  assert.equal(parseFlags(['--icc=0']).flags.icc, false);
  assert.equal(flagErr('--', 'x'), `"berthd" accepts no arguments.\nSee 'berthd --help'.`);
});

test('flags: errors in pflag/cobra wording', () => {
  assert.equal(flagErr('--x'), 'unknown flag: --x');
  assert.equal(flagErr('--nope=1'), 'unknown flag: --nope');
  assert.equal(flagErr('-x'), "unknown shorthand flag: 'x' in -x");
  assert.equal(flagErr('-Dx'), "unknown shorthand flag: 'x' in -Dx");
  assert.equal(flagErr('--host'), 'flag needs an argument: --host');
  assert.equal(flagErr('-H'), "flag needs an argument: 'H' in -H");
  assert.equal(
    flagErr('--max-concurrent-downloads', 'abc'),
    'invalid argument "abc" for "--max-concurrent-downloads" flag: strconv.ParseInt: parsing "abc": invalid syntax',
  );
  assert.equal(
    flagErr('--icc=maybe'),
    'invalid argument "maybe" for "--icc" flag: strconv.ParseBool: parsing "maybe": invalid syntax',
  );
  assert.equal(
    flagErr('-H', 'ftp://x'),
    'invalid argument "ftp://x" for "-H, --host" flag: Invalid bind address format: ftp://x',
  );
  assert.equal(
    flagErr('--label', 'novalue'),
    'invalid argument "novalue" for "--label" flag: bad attribute format: novalue',
  );
  assert.equal(flagErr('--dns', 'nope'), 'invalid argument "nope" for "--dns" flag: nope is not an ip address');
  assert.equal(
    flagErr('--default-ulimit', 'nofile'),
    'invalid argument "nofile" for "--default-ulimit" flag: invalid ulimit argument: nofile',
  );
  assert.equal(
    flagErr('--default-ulimit', 'bogus=1'),
    'invalid argument "bogus=1" for "--default-ulimit" flag: invalid ulimit type: bogus',
  );
  assert.equal(
    flagErr('--default-ulimit', 'nofile=2048:1024'),
    'invalid argument "nofile=2048:1024" for "--default-ulimit" flag: ulimit soft limit must be less than or equal to hard limit: 2048 > 1024',
  );
  assert.equal(
    flagErr('--default-ulimit', 'nofile=1:2:3'),
    'invalid argument "nofile=1:2:3" for "--default-ulimit" flag: too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`',
  );
  assert.equal(
    flagErr('--registry-mirror', 'mirror.example.com'),
    'invalid argument "mirror.example.com" for "--registry-mirror" flag: invalid mirror: unsupported scheme "" in "mirror.example.com"',
  );
  assert.equal(
    flagErr('--registry-mirror', 'https://m.example.com/path'),
    'invalid argument "https://m.example.com/path" for "--registry-mirror" flag: invalid mirror: path, query, or fragment at end of the URI "https://m.example.com/path"',
  );
  assert.equal(
    flagErr('--registry-mirror', 'https://u:secret@m.example.com'),
    'invalid argument "https://u:secret@m.example.com" for "--registry-mirror" flag: invalid mirror: username/password not allowed in URI "https://u:xxxxx@m.example.com"',
  );
  assert.equal(
    flagErr('--insecure-registry', '-bad-'),
    'invalid argument "-bad-" for "--insecure-registry" flag: Invalid index name (-bad-). Cannot begin or end with a hyphen.',
  );
  assert.equal(
    flagErr('--add-runtime', 'crun'),
    'invalid argument "crun" for "--add-runtime" flag: invalid runtime argument: crun',
  );
  assert.equal(
    flagErr('--add-runtime', 'runc=/x'),
    `invalid argument "runc=/x" for "--add-runtime" flag: runtime name 'runc' is reserved`,
  );
  assert.equal(
    flagErr('--add-runtime', 'a=/x', '--add-runtime', 'a=/y'),
    `invalid argument "a=/y" for "--add-runtime" flag: runtime 'a' was already defined`,
  );
  assert.equal(
    flagErr('--default-shm-size', 'lots'),
    `invalid argument "lots" for "--default-shm-size" flag: invalid size: 'lots'`,
  );
  assert.equal(
    flagErr('--exec-opt', 'foo'),
    `invalid argument "foo" for "--exec-opt" flag: invalid exec-opt (foo): must be formatted 'opt=value'`,
  );
  assert.equal(
    flagErr('--storage-opt', 'size'),
    `invalid argument "size" for "--storage-opt" flag: unable to parse key/value option: size`,
  );
  assert.equal(
    flagErr('--default-address-pool', 'base=10.0.0.0/8,size=x'),
    'invalid argument "base=10.0.0.0/8,size=x" for "--default-address-pool" flag: invalid size value: "base=10.0.0.0/8,size=x" (must be integer)',
  );
  assert.equal(
    flagErr('--default-gateway', 'gw'),
    'invalid argument "gw" for "--default-gateway" flag: invalid string being converted to IP address: gw',
  );
  assert.equal(flagErr('-g', '/a', '--data-root', '/b'), 'cannot specify both "--graph" and "--data-root" option');
  assert.equal(flagErr('--data-root', '/b', '-g', '/a'), 'cannot specify both "--graph" and "--data-root" option');
});

test('flags: -g/--graph is the deprecated alias of --data-root', () => {
  const p = parseFlags(['-g', '/export/docker']);
  assert.equal(p.flags.dataRoot, '/export/docker');
  assert.ok(p.setKeys.has('data-root'));
  assert.match(p.warnings.join('\n'), /"-g \/ --graph" flag is deprecated/);
});

test('flags: round trip of the seed examples (dockerd startup scripts)', () => {
  // 示例2: a "bootstrap" instance without networking
  const r = load([
    '-H',
    'unix:///var/run/docker-bootstrap.sock',
    '-p',
    '/var/run/docker-bootstrap.pid',
    '--iptables=false',
    '--ip-masq=false',
    '--bridge=none',
    '--data-root=/var/lib/docker-bootstrap',
    '--exec-root=/var/run/docker-bootstrap',
  ]).config;
  assert.deepEqual(r.hosts, ['unix:///var/run/docker-bootstrap.sock']);
  assert.equal(r.pidfile, '/var/run/docker-bootstrap.pid');
  assert.equal(r.iptables, false);
  assert.equal(r.ipMasq, false);
  assert.equal(r.bridge, 'none');
  assert.equal(r.dataRoot, '/var/lib/docker-bootstrap');
  assert.equal(r.execRoot, '/var/run/docker-bootstrap');
  // 示例1 has two typos (--live-retore, --biq): each is refused by name
  assert.equal(flagErr('--live-retore'), 'unknown flag: --live-retore');
  assert.equal(flagErr('--biq', '172.17.42.1/16'), 'unknown flag: --biq');
  const ok = load([
    '-g',
    '/export/docker',
    '-H',
    'fd://',
    '-H',
    'tcp://0.0.0.0:2375',
    '-H',
    'unix:///var/run/docker.sock',
    '--containerd=/run/containerd/containerd.sock',
    '--exec-opt',
    'native.cgroupdriver=systemd',
    '--live-restore',
    '-s',
    'devicemapper',
    '--storage-opt',
    'dm.loopdatasize=500G',
    '--insecure-registry',
    'https://harbor.example.com',
    '--bip',
    '172.17.42.1/16',
    '--fixed-cidr',
    '172.17.0.0/16',
  ]);
  assert.equal(ok.config.dataRoot, '/export/docker');
  assert.deepEqual(ok.config.hosts, ['fd://', 'tcp://0.0.0.0:2375', 'unix:///var/run/docker.sock']);
  assert.equal(ok.config.storageDriver, 'devicemapper');
  assert.match(
    ok.warnings.join('\n'),
    /insecure registry https:\/\/harbor.example.com should not contain 'https:\/\/'/,
  );
  // the seed's "--insecure-registry https://index.docker.io/v1/" is refused, as by dockerd 20.10+
  assert.equal(
    errOf(() => load(['--insecure-registry', 'https://index.docker.io/v1/'])).message,
    'insecure registry index.docker.io/v1/ is not valid: invalid host "index.docker.io/v1/"',
  );
});

test('usage lists every flag in dockerd style', () => {
  const u = usage();
  assert.ok(u.startsWith('Usage:\tberthd [OPTIONS]\n\nA self-sufficient runtime for containers.\n\nOptions:\n'));
  for (const line of [
    /^ {2}-H, --host list +Daemon socket\(s\) to connect to$/m,
    /^ {2}-D, --debug +Enable debug mode$/m,
    /^ {6}--icc +Enable inter-container communication \(default true\)$/m,
    /^ {6}--max-concurrent-downloads int +Set the max concurrent downloads \(default 3\)$/m,
    /^ {6}--max-concurrent-uploads int +Set the max concurrent uploads \(default 5\)$/m,
    /^ {6}--data-root string +Root directory of persistent Docker state \(default "\/var\/lib\/berth"\)$/m,
    /^ {6}--config-file string +Daemon configuration file \(default "\/etc\/berth\/daemon.json"\)$/m,
    /^ {2}-p, --pidfile string +Path to use for daemon PID file \(default "\/var\/run\/berth.pid"\)$/m,
    /^ {6}--default-shm-size bytes +Default shm size for containers \(default 64MiB\)$/m,
    /^ {6}--validate +Validate daemon configuration and exit$/m,
    /^ {2}-v, --version +Print version information and quit$/m,
  ]) {
    assert.match(u, line);
  }
  for (const f of [
    '--add-runtime',
    '--default-ulimit',
    '--log-opt',
    '--userns-remap',
    '--seccomp-profile',
    '--tlscacert',
  ]) {
    assert.ok(u.includes(f), f);
  }
});

// ---- defaults -----------------------------------------------------------------

test('defaults: berth paths, dockerd values elsewhere; frozen', () => {
  const c = load([]).config;
  assert.equal(c.dataRoot, '/var/lib/berth');
  assert.equal(c.execRoot, '/var/run/berth');
  assert.equal(c.pidfile, '/var/run/berth.pid');
  assert.deepEqual(c.hosts, [DEFAULT_HOST]);
  assert.equal(DEFAULT_HOST, 'unix:///var/run/berth.sock');
  assert.equal(c.group, 'docker');
  assert.equal(c.maxConcurrentDownloads, 3);
  assert.equal(c.maxConcurrentUploads, 5);
  assert.equal(c.maxDownloadAttempts, 5);
  assert.equal(c.shutdownTimeout, 15);
  assert.equal(c.defaultShmSize, 64 * 1024 * 1024);
  assert.equal(c.logDriver, 'json-file');
  assert.equal(c.storageDriver, 'overlay2');
  assert.equal(c.defaultRuntime, 'runc');
  assert.equal(c.logLevel, 'info');
  assert.equal(effectiveLogLevel(c), 'info');
  assert.equal(effectiveLogLevel(load(['-D']).config), 'debug');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.hosts) && Object.isFrozen(DEFAULTS));
  assert.throws(() => {
    (c as { debug: boolean }).debug = true;
  });
});

test('loadDaemonConfig: missing default file is fine, missing explicit file is an error', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-config-'));
  const missing = path.join(dir, 'daemon.json');
  assert.equal(loadDaemonConfig({ argv: [], configFile: missing }).dataRoot, '/var/lib/berth');
  assert.equal(
    errOf(() => loadDaemonConfig({ argv: ['--config-file', missing] })).message,
    `unable to configure the berth daemon with file ${missing}: open ${missing}: no such file or directory`,
  );
  fs.writeFileSync(missing, '{"debug": true, "labels": ["a=b"]}');
  const r = loadDaemonConfigDetailed({ argv: ['--config-file', missing, '-l', 'debug'] });
  assert.equal(r.config.debug, true);
  assert.equal(r.config.logLevel, 'debug');
  assert.equal(r.sources.debug, 'file');
  assert.equal(r.sources['log-level'], 'flag');
  assert.equal(r.sources['data-root'], 'default');
  fs.rmSync(dir, { recursive: true });
});

// ---- daemon.json ----------------------------------------------------------------

test('daemon.json: empty and whitespace-only files are {}', () => {
  assert.equal(load([], '').config.debug, false);
  assert.equal(load([], '  \n\t \n').config.maxConcurrentDownloads, 3);
  assert.equal(load([], '\uFEFF{}').config.maxConcurrentDownloads, 3);
});

test('daemon.json: invalid JSON names line and column', () => {
  assert.equal(
    fileErr('{\n  "debug": true\n  "labels": []\n}'),
    `${PREFIX}invalid JSON at line 3, column 3: expected "," or "}" after the value of "debug", found character "\\""`,
  );
  assert.equal(
    fileErr('{\n  "debug": true,\n}'),
    `${PREFIX}invalid JSON at line 3, column 1: trailing comma before "}" (JSON does not allow it)`,
  );
  assert.equal(fileErr('{"debug": tru}'), `${PREFIX}invalid JSON at line 1, column 11: unexpected character "t"`);
  assert.equal(
    fileErr('{"debug": true'),
    `${PREFIX}invalid JSON at line 1, column 15: expected "," or "}" after the value of "debug", found end of file`,
  );
  assert.equal(fileErr('[]'), `${PREFIX}daemon.json must hold a JSON object ({ … }), but it holds an array`);
  assert.equal(
    fileErr('{} {}'),
    `${PREFIX}invalid JSON at line 1, column 4: unexpected character "{" after the end of the top-level value`,
  );
});

test('daemon.json: comments are called comments, even after another error', () => {
  const msg = `JSON does not allow comments, and this file has "//" comments; remove every comment (daemon.json is plain JSON)`;
  assert.equal(fileErr('{\n  // debug\n  "debug": true\n}'), `${PREFIX}invalid JSON at line 2, column 3: ${msg}`);
  assert.equal(fileErr('{\n  "a": 1,,\n  "debug": true // x\n}'), `${PREFIX}invalid JSON at line 3, column 17: ${msg}`);
  assert.equal(
    fileErr('{ /* c */ "debug": true }'),
    `${PREFIX}invalid JSON at line 1, column 3: JSON does not allow comments, and this file has "/* */" comments; remove every comment (daemon.json is plain JSON)`,
  );
  assert.equal(
    fileErr('{ "debug": true # c\n}'),
    `${PREFIX}invalid JSON at line 1, column 17: JSON does not allow comments, and this file has "#" comments; remove every comment (daemon.json is plain JSON)`,
  );
  // "//" inside a string is not a comment
  assert.deepEqual(load([], '{"registry-mirrors": ["https://m.example.com"]}').config.registryMirrors, [
    'https://m.example.com',
  ]);
});

test('daemon.json: duplicate keys are refused (dockerd keeps the last silently)', () => {
  assert.equal(
    fileErr('{\n  "storage-driver": "overlay2",\n  "storage-driver": "devicemapper"\n}'),
    `${PREFIX}invalid JSON at line 3, column 3: key "storage-driver" appears twice in the same object (first at line 2, column 3); dockerd would silently use the last one, berth refuses the ambiguity`,
  );
});

test('daemon.json: unknown keys by name, with line and the nearest key', () => {
  assert.equal(
    fileErr('{\n  "max-concurent-downloads": 3\n}'),
    `${PREFIX}the following directives don't match any configuration option: max-concurent-downloads (line 2; did you mean "max-concurrent-downloads"?)`,
  );
  assert.equal(
    fileErr('{"insecure-registry": ["a:5000"], "zzzzzzzz": 1}'),
    `${PREFIX}the following directives don't match any configuration option: insecure-registry (line 1; "insecure-registry" is the command-line flag; in daemon.json the key is "insecure-registries"), zzzzzzzz (line 1)`,
  );
  assert.equal(
    fileErr('{"http-proxy": "http://p:3128"}'),
    `${PREFIX}the following directives don't match any configuration option: http-proxy (line 1; it belongs inside "proxies": { "http-proxy": … })`,
  );
  assert.equal(
    fileErr('{"proxies": {"ftp-proxy": "x"}}'),
    `${PREFIX}the following directives don't match any configuration option: proxies.ftp-proxy (line 1; expected http-proxy, https-proxy or no-proxy)`,
  );
  assert.equal(suggestKey('debgu'), 'debug');
  assert.equal(suggestKey('log-opt'), 'log-opts');
  assert.equal(suggestKey('dns-searchs'), 'dns-search');
  assert.equal(suggestKey('completely-unrelated-thing'), undefined);
});

test('daemon.json: wrong types name the key, the position and the expected type', () => {
  assert.equal(
    fileErr('{"experimental": "enabled"}'),
    `${PREFIX}"experimental" (line 1, column 18) must be a boolean (true or false, without quotes), not the string "enabled"`,
  );
  assert.equal(
    fileErr('{"max-concurrent-downloads": "3"}'),
    `${PREFIX}"max-concurrent-downloads" (line 1, column 30) must be an integer, not the string "3"`,
  );
  assert.equal(
    fileErr('{"mtu": 1500.5}'),
    `${PREFIX}"mtu" (line 1, column 9) must be an integer, not the number 1500.5`,
  );
  assert.equal(
    fileErr('{"labels": "a=b"}'),
    `${PREFIX}"labels" (line 1, column 12) must be an array of strings, not the string "a=b"`,
  );
  assert.equal(
    fileErr('{"dns": ["8.8.8.8", 1]}'),
    `${PREFIX}"dns"[1] (line 1, column 21) must be a string, not the number 1`,
  );
  assert.equal(
    fileErr('{"log-opts": {"max-file": 3}}'),
    `${PREFIX}"log-opts".max-file (line 1, column 27) must be a string, not the number 3`,
  );
  assert.equal(fileErr('{"data-root": null}'), `${PREFIX}"data-root" (line 1, column 15) must be a string, not null`);
  // several at once
  assert.equal(
    fileErr('{"debug": "yes", "ipv6": 1}'),
    `${PREFIX}"debug" (line 1, column 11) must be a boolean (true or false, without quotes), not the string "yes"; "ipv6" (line 1, column 26) must be a boolean (true or false, without quotes), not the number 1`,
  );
});

test('daemon.json: structured values (ulimits, runtimes, pools, shm size, proxies, features)', () => {
  const c = load(
    [],
    JSON.stringify({
      'default-ulimits': {
        nofile: { Name: 'nofile', Hard: 2048, Soft: 1024 },
        core: { name: 'core', hard: -1, soft: -1 },
      },
      runtimes: { custom: { path: '/usr/local/bin/my-runc', runtimeArgs: ['--debug'] } },
      'default-runtime': 'custom',
      'default-address-pools': [{ base: '172.80.0.0/16', size: 24 }],
      'default-shm-size': '128M',
      proxies: { 'http-proxy': 'http://user:pw@proxy:3128', 'no-proxy': 'localhost' },
      features: { buildkit: true },
      'log-opts': { 'max-size': '500m', 'max-file': '3' },
    }),
  ).config;
  assert.deepEqual(c.defaultUlimits.nofile, { name: 'nofile', soft: 1024, hard: 2048 });
  assert.deepEqual(c.defaultUlimits.core, { name: 'core', soft: -1, hard: -1 });
  assert.deepEqual(c.runtimes.custom, { path: '/usr/local/bin/my-runc', runtimeArgs: ['--debug'] });
  assert.equal(c.defaultRuntime, 'custom');
  assert.deepEqual(c.defaultAddressPools, [{ base: '172.80.0.0/16', size: 24 }]);
  assert.equal(c.defaultShmSize, 128 * 1024 * 1024);
  assert.equal(c.httpProxy, 'http://user:pw@proxy:3128');
  assert.equal(c.noProxy, 'localhost');
  assert.deepEqual(c.features, { buildkit: true });
  assert.equal(load([], '{"default-shm-size": 1048576}').config.defaultShmSize, 1048576);

  assert.equal(
    fileErr('{"default-ulimits": {"nofile": {"Name": "nproc", "Soft": 1, "Hard": 2}}}'),
    `${PREFIX}"default-ulimits.nofile" has Name "nproc"; the key and the Name must match`,
  );
  assert.equal(
    fileErr('{"default-ulimits": {"nofile": {"Soft": 10, "Hard": 2}}}'),
    `${PREFIX}"default-ulimits.nofile": ulimit soft limit must be less than or equal to hard limit: 10 > 2`,
  );
  assert.equal(
    fileErr('{"default-ulimits": {"nofile": {"Soft": 1, "Hard": 2, "Max": 3}}}'),
    `${PREFIX}"default-ulimits.nofile" has an unknown field "Max" (line 1, column 55)`,
  );
  assert.equal(
    fileErr('{"runtimes": {"x": {}}}'),
    `${PREFIX}"runtimes.x" (line 1, column 20) needs "path" (or "runtimeType")`,
  );
  assert.equal(
    fileErr('{"default-address-pools": [{"base": "10.0.0.0/8", "size": 4}]}'),
    `${PREFIX}"default-address-pools[0]": invalid pool size 4 for base 10.0.0.0/8: must be between 8 and 32`,
  );
  assert.equal(
    fileErr('{"default-shm-size": "lots"}'),
    `${PREFIX}"default-shm-size" (line 1, column 22): invalid size: 'lots'`,
  );
});

test('daemon.json: graph is the deprecated alias of data-root', () => {
  const r = load([], '{"graph": "/disk/docker"}');
  assert.equal(r.config.dataRoot, '/disk/docker');
  assert.match(r.warnings.join('\n'), /The "graph" config file option is deprecated. Please use "data-root" instead./);
  assert.equal(
    fileErr('{"graph": "/disk/docker", "data-root": "/data/docker"}'),
    `${PREFIX}cannot specify both "graph" and "data-root" config file options`,
  );
  assert.equal(
    fileErr('{"graph": "/disk/docker"}', ['--data-root', '/x']),
    `${PREFIX}the following directives are specified both as a flag and in the configuration file: graph: (from flag: /x, from file: /disk/docker)`,
  );
});

test('flag and file both setting a directive: dockerd wording', () => {
  assert.equal(
    fileErr('{"hosts": ["unix:///var/run/berth.sock", "tcp://127.0.0.1:2375"]}', ['-H', 'fd://']),
    `${PREFIX}the following directives are specified both as a flag and in the configuration file: hosts: (from flag: [fd://], from file: [unix:///var/run/berth.sock tcp://127.0.0.1:2375])`,
  );
  assert.equal(
    fileErr('{"debug": true, "max-concurrent-downloads": 4}', ['-D', '--max-concurrent-downloads', '5']),
    `${PREFIX}the following directives are specified both as a flag and in the configuration file: debug: (from flag: true, from file: true), max-concurrent-downloads: (from flag: 5, from file: 4)`,
  );
  assert.equal(
    fileErr('{"log-opts": {"max-size": "1m"}}', ['--log-opt', 'max-file=2']),
    `${PREFIX}the following directives are specified both as a flag and in the configuration file: log-opts: (from flag: map[max-file:2], from file: map[max-size:1m])`,
  );
  assert.equal(
    fileErr('{"proxies": {"http-proxy": "http://a:b@p:1"}}', ['--http-proxy', 'http://c:d@q:2']),
    `${PREFIX}the following directives are specified both as a flag and in the configuration file: http-proxy: (from flag: http://xxxxx:xxxxx@q:2, from file: http://xxxxx:xxxxx@p:1)`,
  );
  // runtimes merge, as in dockerd
  const c = load(['--add-runtime', 'a=/bin/a'], '{"runtimes": {"b": {"path": "/bin/b"}}}').config;
  assert.deepEqual(Object.keys(c.runtimes).sort(), ['a', 'b']);
  assert.equal(
    fileErr('{"runtimes": {"a": {"path": "/bin/b"}}}', ['--add-runtime', 'a=/bin/a']),
    `${PREFIX}runtime 'a' was already defined`,
  );
});

test('semantic validation of the merged configuration', () => {
  const v = (text: string, argv: string[] = []) => fileErr(text, argv);
  assert.equal(v('{"log-level": "loud"}'), `${MERGED}invalid logging level: loud`);
  assert.equal(errOf(() => load(['-l', 'loud'])).message, 'invalid logging level: loud');
  assert.equal(load(['-l', 'warning']).config.logLevel, 'warning');
  assert.equal(v('{"log-format": "xml"}'), `${MERGED}invalid log format: xml`);
  assert.equal(v('{"max-concurrent-downloads": 0}'), `${MERGED}invalid max concurrent downloads: 0`);
  assert.equal(v('{"max-concurrent-uploads": -1}'), `${MERGED}invalid max concurrent uploads: -1`);
  assert.equal(v('{"max-download-attempts": 0}'), `${MERGED}invalid max download attempts: 0`);
  assert.equal(v('{"mtu": -1}'), `${MERGED}invalid default MTU: -1`);
  assert.equal(v('{"shutdown-timeout": -2}'), `${MERGED}invalid shutdown-timeout: -2 (seconds, or -1 to wait forever)`);
  assert.equal(v('{"default-runtime": "crun"}'), `${MERGED}specified default runtime 'crun' does not exist`);
  assert.equal(load(['--default-runtime', 'io.containerd.runc.v2']).config.defaultRuntime, 'io.containerd.runc.v2');
  assert.equal(v('{"runtimes": {"runc": {"path": "runc"}}}'), `${MERGED}runtime name 'runc' is reserved`);
  assert.equal(
    v('{"bip": "172.17.0.1/16"}', ['-b', 'br0']),
    `${MERGED}You specified -b & --bip, mutually exclusive options. Please specify only one`,
  );
  assert.equal(
    v('{"icc": false, "iptables": false}'),
    `${MERGED}You specified --iptables=false with --icc=false. ICC=false uses iptables to function. Please set --icc or --iptables to true`,
  );
  assert.equal(
    v('{"bip": "172.17.0.1"}'),
    `${MERGED}invalid bip: 172.17.0.1 (expected an IPv4 CIDR such as 172.17.0.1/16)`,
  );
  assert.equal(v('{"fixed-cidr-v6": "10.0.0.0/8"}'), `${MERGED}invalid fixed-cidr-v6: 10.0.0.0/8`);
  assert.equal(v('{"ip": "localhost"}'), `${MERGED}invalid ip: localhost is not an ip address`);
  assert.equal(v('{"labels": ["nokey"]}'), `${MERGED}bad attribute format: nokey`);
  assert.equal(v('{"labels": ["a=1", "a=2"]}'), `${MERGED}conflict labels for a=2 and a=1`);
  assert.deepEqual(load([], '{"labels": ["a=1", "a=1", "b=2"]}').config.labels, ['a=1', 'b=2']);
  assert.equal(v('{"dns": ["8.8.8.888"]}'), `${MERGED}8.8.8.888 is not an ip address`);
  assert.equal(v('{"dns-search": ["-"]}'), `${MERGED}- is not a valid domain`);
  assert.equal(
    v('{"exec-opts": ["native.cgroupdriver=xyz"]}'),
    `${MERGED}invalid exec-opt (native.cgroupdriver=xyz): native.cgroupdriver option xyz not supported`,
  );
  assert.equal(v('{"storage-opts": ["overlay2.size"]}'), `${MERGED}unable to parse key/value option: overlay2.size`);
  assert.equal(
    v('{"registry-mirrors": ["ftp://m.example.com"]}'),
    `${MERGED}invalid mirror: unsupported scheme "ftp" in "ftp://m.example.com"`,
  );
  assert.equal(
    v('{"insecure-registries": ["a b"]}'),
    `${MERGED}insecure registry a b is not valid: invalid host "a b"`,
  );
  assert.equal(
    v('{"insecure-registries": ["10.0.0.0/99"]}'),
    `${MERGED}insecure registry 10.0.0.0/99 is not valid: invalid CIDR address "10.0.0.0/99"`,
  );
  assert.equal(
    v('{"insecure-registries": ["reg:99999"]}'),
    `${MERGED}insecure registry reg:99999 is not valid: invalid port "99999"`,
  );
  assert.equal(
    v('{"insecure-registries": ["ftp://reg"]}'),
    `${MERGED}insecure registry ftp://reg should not contain '://'`,
  );
  const okReg = load(
    [],
    '{"insecure-registries": ["192.168.10.200:5000", "10.0.0.0/8", "[::1]:5000", "https://harbor.example.com"]}',
  );
  assert.deepEqual(okReg.config.insecureRegistries, [
    '192.168.10.200:5000',
    '10.0.0.0/8',
    '[::1]:5000',
    'harbor.example.com',
  ]);
  assert.equal(
    v('{"exec-opts": ["native.umask=weird"]}'),
    `${MERGED}invalid exec-opt (native.umask=weird): native.umask option weird not supported`,
  );
  assert.equal(
    v('{"exec-opts": ["isolation=hyperv"]}'),
    `${MERGED}invalid exec-opt (isolation=hyperv): unknown option: "isolation"`,
  );
  assert.equal(
    v('{"proxies": "http://p:3128"}'),
    `${PREFIX}"proxies" (line 1, column 13) must be an object with http-proxy, https-proxy or no-proxy, not the string "http://p:3128"`,
  );
  assert.match(
    okReg.warnings.join('\n'),
    /insecure registry https:\/\/harbor.example.com should not contain 'https:\/\/'/,
  );
  assert.equal(
    v('{"default-ipc-mode": "host"}'),
    `${MERGED}IPC mode "host" is not supported as default value; use "shareable" or "private"`,
  );
  assert.equal(
    v('{"default-ipc-mode": "bogus"}'),
    `${MERGED}default IPC mode setting (bogus) is invalid; use "shareable" or "private"`,
  );
  assert.equal(
    v('{"default-cgroupns-mode": "bogus"}'),
    `${MERGED}default cgroup namespace mode (bogus) is invalid; use "host" or "private"`,
  );
  assert.equal(
    v('{"node-generic-resources": ["gpu"]}'),
    `${MERGED}invalid node-generic-resource format \`gpu\` expected \`name=value\``,
  );
  assert.equal(
    v('{"metrics-addr": "9323"}'),
    `${MERGED}invalid metrics-addr: 9323 (expected host:port, such as 127.0.0.1:9323)`,
  );
  assert.equal(
    v('{"cgroup-parent": "foo", "exec-opts": ["native.cgroupdriver=systemd"]}'),
    `${MERGED}cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"`,
  );
  assert.equal(
    v('{"network-diagnostic-port": 70000}'),
    `${MERGED}invalid network-diagnostic-port (70000): value must be between 0 and 65535`,
  );
});

test('hosts: syntax and duplicates', () => {
  assert.deepEqual(parseDaemonHost('unix://'), {
    proto: 'unix',
    address: '/var/run/berth.sock',
    url: 'unix:///var/run/berth.sock',
  });
  assert.deepEqual(parseDaemonHost('tcp://0.0.0.0:2375'), {
    proto: 'tcp',
    address: '0.0.0.0:2375',
    url: 'tcp://0.0.0.0:2375',
  });
  assert.equal(parseDaemonHost('tcp://').url, 'tcp://localhost:2375');
  assert.equal(parseDaemonHost('tcp://', true).url, 'tcp://localhost:2376');
  assert.equal(parseDaemonHost('tcp://:2376').url, 'tcp://localhost:2376');
  assert.equal(parseDaemonHost('tcp://[::1]:2375').url, 'tcp://[::1]:2375');
  assert.equal(parseDaemonHost('127.0.0.1:2375').url, 'tcp://127.0.0.1:2375');
  assert.equal(parseDaemonHost('fd://').url, 'fd://');
  assert.equal(parseDaemonHost('fd://3').address, '3');
  const v = (text: string) => fileErr(text);
  assert.equal(
    v('{"hosts": ["/var/run/docker.sock"]}'),
    `${MERGED}Invalid bind address format: /var/run/docker.sock (a socket path needs the unix:// scheme: unix:///var/run/docker.sock)`,
  );
  assert.equal(v('{"hosts": ["tcp://host:port"]}'), `${MERGED}Invalid bind address format: tcp://host:port`);
  assert.equal(v('{"hosts": ["tcp://unix://x"]}'), `${MERGED}Invalid proto, expected tcp: tcp://unix://x`);
  assert.equal(v('{"hosts": ["udp://x:1"]}'), `${MERGED}Invalid bind address format: udp://x:1`);
  assert.equal(
    v('{"hosts": ["unix:///var/run/berth.sock", "unix://"]}'),
    `${MERGED}duplicate host: "unix://" and "unix:///var/run/berth.sock" both listen on unix:///var/run/berth.sock`,
  );
  assert.deepEqual(load([], '{"hosts": []}').config.hosts, [DEFAULT_HOST]);
});

test('tls: tlsverify implies tls; tls alone verifies unless --tlsverify=false', () => {
  let c = load(['--tlsverify']).config;
  assert.equal(c.tls, true);
  assert.equal(c.tlsverify, true);
  c = load([], '{"tlsverify": false}').config;
  assert.equal(c.tls, true);
  assert.equal(c.tlsverify, false);
  c = load(['--tls']).config;
  assert.equal(c.tls, true);
  assert.equal(c.tlsverify, true);
  c = load(['--tls', '--tlsverify=false']).config;
  assert.equal(c.tlsverify, false);
  c = load([]).config;
  assert.equal(c.tls, false);
  assert.equal(c.tlsverify, false);
});

// ---- the seed's daemon.json -------------------------------------------------------

function seedDaemonJson(): string {
  const seed = fs.readFileSync('/work/shared/seed/000_f3243fb456058d11.txt', 'utf8');
  const start = seed.indexOf('{', seed.indexOf('daemon-configuration-file参数一览'));
  const end = seed.indexOf('3.docker.service', start);
  return seed.slice(start, end).trim();
}

/** Removes //, /* *\/ and # comments outside strings, and trailing commas. */
function stripComments(text: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
    } else if ((c === '/' && text[i + 1] === '/') || c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && text[i + 1] === '*') {
      i = text.indexOf('*/', i) + 1;
    } else out += c;
  }
  return out.replace(/,(\s*[}\]])/g, '$1');
}

const seedAvailable = fs.existsSync('/work/shared/seed/000_f3243fb456058d11.txt');

test('the seed daemon.json: refused for its comments, then for each real problem in turn', {
  skip: !seedAvailable,
}, () => {
  const raw = seedDaemonJson();
  assert.ok(raw.startsWith('{') && raw.endsWith('}'));
  const commentMsg = `${PREFIX}invalid JSON at line 2, column 1: JSON does not allow comments, and this file has "//" comments; remove every comment (daemon.json is plain JSON)`;
  assert.equal(fileErr(raw), commentMsg);

  // without comments: "storage-driver" and "storage-opts" are there twice (overlay2, then devicemapper)
  let text = stripComments(raw);
  assert.match(
    fileErr(text),
    /key "storage-driver" appears twice in the same object \(first at line \d+, column 1\); dockerd would silently use the last one/,
  );

  // keep the overlay2 block only
  const dm = text.indexOf('"storage-driver": "devicemapper"');
  const dmEnd = text.indexOf(']', dm) + 1;
  text = `${text.slice(0, dm)}${text.slice(dmEnd).replace(/^\s*,/, '')}`;
  assert.equal(
    fileErr(text),
    `${PREFIX}the following directives don't match any configuration option: auths (line 3; a docker CLI ~/.docker/config.json key (registry credentials), not a daemon.json key; use \`docker login\`), HttpHeaders (line 20; a docker CLI ~/.docker/config.json key, not a daemon.json key)`,
  );

  const obj = JSON.parse(text) as Record<string, unknown>;
  delete obj.auths;
  delete obj.HttpHeaders;
  assert.equal(
    fileErr(JSON.stringify(obj, null, 2)),
    `${PREFIX}cannot specify both "graph" and "data-root" config file options`,
  );
  delete obj.graph;
  const pretty = JSON.stringify(obj, null, 2);
  const expLine = pretty.slice(0, pretty.indexOf('"experimental"')).split('\n').length;
  assert.equal(
    fileErr(pretty),
    `${PREFIX}"experimental" (line ${expLine}, column 19) must be a boolean (true or false, without quotes), not the string "enabled"`,
  );
  obj.experimental = true;
  assert.equal(
    fileErr(JSON.stringify(obj, null, 2)),
    `${MERGED}Invalid bind address format: /var/run/docker.sock (a socket path needs the unix:// scheme: unix:///var/run/docker.sock)`,
  );
  obj.hosts = ['unix:///var/run/docker.sock'];
  assert.equal(fileErr(JSON.stringify(obj, null, 2)), `${MERGED}runtime name 'runc' is reserved`);
  delete (obj.runtimes as Record<string, unknown>).runc;

  // now it loads
  const r = load([], JSON.stringify(obj, null, 2));
  const c = r.config;
  assert.equal(c.dataRoot, '/data/docker');
  assert.equal(c.storageDriver, 'overlay2');
  assert.deepEqual(c.storageOpts, ['overlay2.override_kernel_check=true', 'overlay2.size=1G']);
  assert.deepEqual(c.registryMirrors, ['https://xlx9erfu.mirror.aliyuncs.com', 'https://docker.mirrors.ustc.edu.cn']);
  assert.deepEqual(c.defaultUlimits.nofile, { name: 'nofile', soft: 1024000, hard: 1024000 });
  assert.equal(c.tls, true);
  assert.equal(c.tlsverify, true);
  assert.equal(c.oomScoreAdjust, -1000);
  assert.equal(c.logOpts['max-size'], '500m');
  assert.match(
    r.warnings.join('\n'),
    /insecure registry https:\/\/harbor.weiyigeek.top should not contain 'https:\/\/'/,
  );

  // and with the same keys on the command line, dockerd's conflict message
  assert.match(
    fileErr(JSON.stringify(obj, null, 2), ['-H', 'fd://', '--debug']),
    /the following directives are specified both as a flag and in the configuration file: debug: \(from flag: true, from file: true\), hosts: \(from flag: \[fd:\/\/\], from file: \[unix:\/\/\/var\/run\/docker.sock\]\)$/,
  );
});

// ---- reload ----------------------------------------------------------------------

test('reload: applies reloadable keys, reports the others, validates the merged result', () => {
  const flags = parseFlags(['-H', 'unix:///tmp/b.sock']);
  const start = resolveDaemonConfig(
    flags,
    '{"debug": false, "labels": ["a=1"], "storage-driver": "overlay2"}',
    F,
  ).config;
  const r = reloadDaemonConfig(
    start,
    flags,
    JSON.stringify({
      debug: true,
      'log-level': 'debug',
      labels: ['a=2'],
      'max-concurrent-downloads': 10,
      'registry-mirrors': ['https://m.example.com'],
      'insecure-registries': ['reg:5000'],
      'live-restore': true,
      'shutdown-timeout': 30,
      runtimes: { crun: { path: '/usr/bin/crun' } },
      'default-runtime': 'crun',
      'storage-driver': 'vfs',
      'log-opts': { 'max-size': '10m' },
    }),
    { configFile: F },
  );
  assert.deepEqual(r.changed.sort(), [
    'debug',
    'default-runtime',
    'insecure-registries',
    'labels',
    'live-restore',
    'log-level',
    'max-concurrent-downloads',
    'registry-mirrors',
    'runtimes',
    'shutdown-timeout',
  ]);
  assert.deepEqual(r.needRestart.sort(), ['log-opts', 'storage-driver']);
  assert.equal(r.next.debug, true);
  assert.equal(r.next.maxConcurrentDownloads, 10);
  assert.equal(r.next.defaultRuntime, 'crun');
  assert.equal(r.next.storageDriver, 'overlay2', 'a restart-only key keeps its live value');
  assert.deepEqual(r.next.logOpts, {});
  assert.deepEqual(r.next.hosts, ['unix:///tmp/b.sock']);
  assert.ok(Object.isFrozen(r.next));
  assert.equal(start.debug, false, 'the live configuration is never mutated');

  // removing a key from the file reverts it to its default
  const r2 = reloadDaemonConfig(r.next, flags, '{}');
  assert.equal(r2.next.maxConcurrentDownloads, 3);
  assert.equal(r2.next.debug, false);
  assert.equal(r2.next.defaultRuntime, 'runc');
  assert.deepEqual(r2.next.runtimes, {});
  // the file going away entirely is the same as an empty one
  assert.equal(reloadDaemonConfig(r.next, flags, undefined).next.maxConcurrentDownloads, 3);
});

test('reload: an invalid file changes nothing and says why', () => {
  const flags = parseFlags(['-D']);
  const live = resolveDaemonConfig(flags, '{"max-concurrent-downloads": 4}', F).config;
  // a reloadable key that only validates together with another (moby's partial-validation TODO)
  const ok = reloadDaemonConfig(
    live,
    flags,
    '{"runtimes": {"crun": {"path": "/bin/crun"}}, "default-runtime": "crun"}',
  );
  assert.equal(ok.next.defaultRuntime, 'crun');
  for (const [text, msg] of [
    ['{"max-concurrent-downloads": 0}', `${MERGED}invalid max concurrent downloads: 0`],
    ['{"default-runtime": "crun"}', `${MERGED}specified default runtime 'crun' does not exist`],
    [
      '{ // x\n}',
      `${PREFIX}invalid JSON at line 1, column 3: JSON does not allow comments, and this file has "//" comments; remove every comment (daemon.json is plain JSON)`,
    ],
    [
      '{"debug": true}',
      `${PREFIX}the following directives are specified both as a flag and in the configuration file: debug: (from flag: true, from file: true)`,
    ],
    ['{"max-concurrent-downloads": 5, "labels": ["x"]}', `${MERGED}bad attribute format: x`],
  ] as const) {
    const e = errOf(() => reloadDaemonConfig(live, flags, text, { configFile: F }));
    assert.equal(e.message, msg);
    assert.equal(e.kind, 'invalid-argument');
    assert.equal(live.maxConcurrentDownloads, 4);
  }
});

test("reload: the reloadable keys are dockerd's (plus log-level and berth's berth-registry-mirrors)", () => {
  assert.deepEqual([...RELOADABLE_KEYS].sort(), [
    'allow-nondistributable-artifacts',
    'authorization-plugins',
    'berth-registry-mirrors',
    'debug',
    'default-cgroupns-mode',
    'default-ipc-mode',
    'default-runtime',
    'default-shm-size',
    'features',
    'insecure-registries',
    'labels',
    'live-restore',
    'log-level',
    'max-concurrent-downloads',
    'max-concurrent-uploads',
    'max-download-attempts',
    'network-diagnostic-port',
    'registry-mirrors',
    'runtimes',
    'shutdown-timeout',
  ]);
});

// ---- not supported yet ---------------------------------------------------------------

test('unsupportedSettings lists non-default settings outside the supported set', () => {
  const supported = ['debug', 'log-level', 'hosts', 'data-root', 'max-concurrent-downloads', 'registry-mirrors'];
  const c = load(
    ['--bip', '172.18.0.1/16', '-D', '--userns-remap', 'default', '--icc=true'],
    '{"max-concurrent-downloads": 8}',
  ).config;
  assert.deepEqual(unsupportedSettings(c, supported), ['bip', 'userns-remap']);
  assert.deepEqual(unsupportedSettings(load([]).config, supported), []);
  const e = errOf(() => assertSupported(c, supported));
  assert.equal(e.kind, 'not-implemented');
  assert.equal(
    e.message,
    'berthd does not support these settings yet: bip (--bip), userns-remap (--userns-remap); remove them from the command line and daemon.json, or set them to their defaults',
  );
  assert.doesNotThrow(() => assertSupported(load(['-D']).config, supported));
});
