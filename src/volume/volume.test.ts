import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { parseMountOptions } from './local.js';
import { convertTmpfsOptions, parseBind, parseMountFlag, validateMountConfig } from './mounts.js';
import { copyUp, VolumeService } from './service.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-vol-'));
after(() => {
  spawnUmount(tmp);
  fs.rmSync(tmp, { recursive: true, force: true });
});
function spawnUmount(root: string) {
  for (const l of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const p = l.split(' ')[4];
    if (p?.startsWith(root)) spawnSync('umount', ['-l', p]);
  }
}

describe('mount specs (dockerd 20.10 texts)', () => {
  const err = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  };
  test('--mount validation', () => {
    assert.equal(
      err(() => validateMountConfig({ Type: 'bind', Source: '/nonexist-berth', Target: '/x' })),
      'invalid mount config for type "bind": bind source path does not exist: /nonexist-berth',
    );
    assert.equal(
      err(() => validateMountConfig({ Type: 'bind', Target: '/x' })),
      'invalid mount config for type "bind": field Source must not be empty',
    );
    assert.equal(
      err(() => validateMountConfig({ Type: 'volume', Target: 'relative' })),
      `invalid mount config for type "volume": invalid mount path: 'relative' mount path must be absolute`,
    );
    assert.equal(
      err(() => validateMountConfig({ Type: 'tmpfs', Target: '/x', Source: 'foo' })),
      'invalid mount config for type "tmpfs": field Source must not be specified',
    );
    assert.equal(
      err(() => validateMountConfig({ Type: 'volume', Target: '/' })),
      `invalid mount config for type "volume": invalid specification: destination can't be '/'`,
    );
    assert.equal(
      err(() => validateMountConfig({ Type: 'foo', Target: '/x' })),
      'invalid mount config for type "foo": mount type unknown',
    );
    assert.equal(
      err(() => validateMountConfig({ Type: 'volume', Target: '/x', ReadOnly: true })),
      'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes',
    );
  });
  test('-v grammar', () => {
    assert.equal(
      err(() => parseBind('/tmp:/x:bogus')),
      'invalid mode: bogus',
    );
    assert.equal(
      err(() => parseBind('/tmp:/x:ro,rw')),
      'invalid mode: ro,rw',
    );
    assert.equal(
      err(() => parseBind('/x:rw')),
      "invalid volume specification: '/x:rw'",
    );
    assert.equal(
      err(() => parseBind(':/x')),
      "invalid volume specification: ':/x'",
    );
    const b = parseBind('/tmp:/host:ro,rslave');
    assert.deepEqual(
      [b.Type, b.Source, b.Destination, b.RW, b.Propagation, b.Relabel],
      ['bind', '/tmp', '/host', false, 'rslave', 'ro,rslave'],
    );
    const v = parseBind('vol1:/vol:nocopy');
    assert.deepEqual([v.Type, v.Name, v.CopyData, v.Propagation], ['volume', 'vol1', false, undefined]);
    const a = parseBind('/data');
    assert.deepEqual([a.Type, a.Name, a.Destination], ['volume', '', '/data']);
    assert.match(
      err(() => parseBind('a:b')),
      /mount path must be absolute/,
    );
  });
  test('--mount flag', () => {
    assert.equal(
      err(() => parseMountFlag('type=bind,source=/tmp,target=/x,volume-nocopy')),
      "cannot mix 'volume-*' options with mount type 'bind'",
    );
    assert.equal(
      err(() => parseMountFlag('type=volume,target=/x,bind-propagation=shared')),
      "cannot mix 'bind-*' options with mount type 'volume'",
    );
    assert.deepEqual(parseMountFlag('type=tmpfs,target=/tm,tmpfs-size=1m,tmpfs-mode=0700'), {
      Type: 'tmpfs',
      Target: '/tm',
      TmpfsOptions: { SizeBytes: 1048576, Mode: 0o700 },
    });
    assert.equal(convertTmpfsOptions({ SizeBytes: 1048576, Mode: 0o700 }, false), 'mode=700,size=1m');
    assert.deepEqual(
      parseMountFlag('type=volume,src=v,dst=/v,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-label=a=b'),
      {
        Type: 'volume',
        Source: 'v',
        Target: '/v',
        VolumeOptions: { DriverConfig: { Options: { type: 'tmpfs', device: 'tmpfs' } }, Labels: { a: 'b' } },
      },
    );
  });
  test('mount option strings', () => {
    assert.deepEqual(parseMountOptions('bind,ro'), { flags: 4096 | 1, data: '' });
    assert.deepEqual(parseMountOptions('size=1m,uid=1000,noexec'), { flags: 8, data: 'size=1m,uid=1000' });
  });
});

describe('local driver and volume service', () => {
  const root = path.join(tmp, 'root');
  fs.mkdirSync(root);
  const svc = VolumeService.open(root);
  test('create / inspect / list with moby modes', () => {
    const v = svc.create({ name: 'vol1', labels: { a: 'b' } });
    assert.equal(v.Mountpoint, path.join(root, 'volumes/vol1/_data'));
    assert.equal(fs.statSync(path.join(root, 'volumes')).mode & 0o777, 0o701);
    assert.equal(fs.statSync(path.join(root, 'volumes/vol1')).mode & 0o777, 0o701);
    assert.equal(fs.statSync(v.Mountpoint).mode & 0o777, 0o755);
    assert.deepEqual(Object.keys(v), ['CreatedAt', 'Driver', 'Labels', 'Mountpoint', 'Name', 'Options', 'Scope']);
    assert.equal(svc.get('vol1').Labels?.a, 'b');
    const anon = svc.create({});
    assert.match(anon.Name, /^[a-f0-9]{64}$/);
    assert.deepEqual(
      svc.list({ label: ['a=b'] }).map((x) => x.Name),
      ['vol1'],
    );
    // reload from disk
    const again = VolumeService.open(root);
    assert.deepEqual(again.get('vol1').Labels, { a: 'b' });
    assert.ok(again.isAnonymous(anon.Name));
  });
  test('name and option errors', () => {
    assert.throws(() => svc.create({ name: '/abs' }), {
      message:
        '"/abs" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path',
    });
    assert.throws(() => svc.create({ name: 'x' }), /too short/);
    assert.throws(() => svc.create({ name: 'o1', driverOpts: { foo: 'bar' } }), {
      message: 'invalid option key: "foo"',
    });
    assert.throws(() => svc.create({ name: 'o2', driverOpts: { type: 'tmpfs' } }), {
      message: 'missing required option: "device"',
    });
    assert.throws(() => svc.get('nope'), { message: 'get nope: no such volume' });
  });
  test('in use, rm, prune', () => {
    svc.create({ name: 'busy' });
    svc.acquire('busy', 'c1');
    svc.acquire('busy', 'c2');
    assert.throws(() => svc.remove('busy'), { message: 'remove busy: volume is in use - [c1, c2]' });
    assert.deepEqual(
      svc.list({ dangling: false }).map((v) => v.Name),
      ['busy'],
    );
    fs.writeFileSync(path.join(svc.get('vol1').Mountpoint, 'f'), 'x'.repeat(10000));
    const r = svc.prune();
    assert.ok(r.VolumesDeleted.includes('vol1'));
    assert.ok(!r.VolumesDeleted.includes('busy'));
    assert.ok(r.SpaceReclaimed >= 10000);
    svc.release('busy', 'c1');
    svc.release('busy', 'c2');
    svc.remove('busy');
    assert.deepEqual(svc.list(), []);
  });
  test('copy-up of image content into an empty volume', () => {
    const src = path.join(tmp, 'img/data');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(src, 'hello'), 'hi\n');
    fs.chmodSync(path.join(src, 'hello'), 0o640);
    fs.chownSync(path.join(src, 'hello'), 1000, 1000);
    fs.symlinkSync('hello', path.join(src, 'link'));
    fs.chmodSync(src, 0o750);
    const v = svc.create({ name: 'cu' });
    assert.equal(copyUp(src, v.Mountpoint), true);
    assert.equal(fs.readFileSync(path.join(v.Mountpoint, 'hello'), 'utf8'), 'hi\n');
    const st = fs.statSync(path.join(v.Mountpoint, 'hello'));
    assert.deepEqual([st.mode & 0o777, st.uid, st.gid], [0o640, 1000, 1000]);
    assert.equal(fs.readlinkSync(path.join(v.Mountpoint, 'link')), 'hello');
    assert.equal(fs.statSync(v.Mountpoint).mode & 0o777, 0o750);
    assert.equal(copyUp(src, v.Mountpoint), false, 'not empty any more');
    svc.remove('cu');
  });
  test('tmpfs and bind options are mounted on use', { skip: process.getuid?.() !== 0 && 'needs root' }, () => {
    const _t = svc.create({ name: 'tv', driverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m,uid=1000' } });
    assert.equal(
      fs.readFileSync(path.join(root, 'volumes/tv/opts.json'), 'utf8'),
      '{"type":"tmpfs","device":"tmpfs","o":"size=1m,uid=1000"}',
    );
    const p = svc.mount('tv', 'c1');
    const line = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === p);
    assert.ok(line?.includes(' - tmpfs '), line);
    assert.equal(fs.statSync(p).uid, 1000);
    svc.unmount('tv', 'c1');
    svc.release('tv', 'c1');
    assert.ok(!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${p} `));
    const hostDir = path.join(tmp, 'hostdir');
    fs.mkdirSync(hostDir);
    fs.writeFileSync(path.join(hostDir, 'marker'), 'm');
    svc.create({ name: 'bv', driverOpts: { type: 'none', device: hostDir, o: 'bind' } });
    const bp = svc.mount('bv', 'c2');
    assert.equal(fs.readFileSync(path.join(bp, 'marker'), 'utf8'), 'm');
    svc.unmount('bv', 'c2');
    svc.release('bv', 'c2');
    svc.remove('bv');
    svc.remove('tv');
    assert.ok(fs.existsSync(path.join(hostDir, 'marker')), 'removing a bind volume leaves the host dir');
  });
});

test('remove frees the name at once and deletes in the background; an interrupted removal is swept at open', async () => {
  const root = fs.mkdtempSync(path.join(tmp, 'rm-'));
  const svc = VolumeService.open(root);
  const v = svc.create({ name: 'big' });
  const data = svc.local.dataPath(v.Name);
  for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(data, `f${i}`), 'x'.repeat(1000));
  svc.remove('big');
  assert.ok(!fs.existsSync(path.join(root, 'volumes', 'big')));
  svc.create({ name: 'big' }); // the name is free again, the new volume is empty
  assert.deepEqual(fs.readdirSync(svc.local.dataPath('big')), []);
  const deadline = Date.now() + 5000;
  while (fs.readdirSync(path.join(root, 'volumes')).some((n) => n.startsWith('.removing-')) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(fs.readdirSync(path.join(root, 'volumes')), ['big']);
  // a crash between the rename and the deletion: the next open sweeps it, not a volume
  fs.mkdirSync(path.join(root, 'volumes', '.removing-old-1234abcd', '_data'), { recursive: true });
  const again = VolumeService.open(root);
  assert.deepEqual(
    again.list().map((x) => x.Name),
    ['big'],
  );
  assert.ok(!fs.existsSync(path.join(root, 'volumes', '.removing-old-1234abcd')));
});
