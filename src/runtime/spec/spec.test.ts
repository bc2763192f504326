import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Container } from '../../container/container.js';
import { buildSpec, DEFAULT_CAPS, mergeTmpfsOptions, tweakCapabilities } from './builder.js';
import { loadSeccompProfile, resolveSeccomp } from './seccomp.js';
import { getAdditionalGroups, getExecUser } from './user.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-spec-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const root = path.join(tmp, 'rootfs');
fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser1:x:1000:1000::/home/u:/bin/sh\n');
fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\ngrp1:x:1000:\nextra:x:2000:user1\n');
const msg = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};

describe('capabilities', () => {
  test('defaults, add/drop, ALL, CAP_ prefix', () => {
    assert.equal(DEFAULT_CAPS.length, 14);
    assert.deepEqual(tweakCapabilities(['net_admin'], ['CAP_CHOWN'], false), [
      ...DEFAULT_CAPS.filter((c) => c !== 'CAP_CHOWN'),
      'CAP_NET_ADMIN',
    ]);
    assert.deepEqual(tweakCapabilities(['KILL'], ['ALL'], false), ['CAP_KILL']);
    assert.equal(tweakCapabilities(['ALL'], ['CAP_SYS_ADMIN'], false).length, 37);
    assert.equal(tweakCapabilities([], [], true).length, 38);
    assert.equal(
      msg(() => tweakCapabilities(['BOGUS'], [], false)),
      'unknown capability: "CAP_BOGUS"',
    );
  });
});

describe('user resolution', () => {
  test('names, numbers, groups and dockerd errors', () => {
    assert.deepEqual(getExecUser(root, ''), { uid: 0, gid: 0, sgids: [], home: '/root' });
    assert.deepEqual(getExecUser(root, 'user1'), { uid: 1000, gid: 1000, sgids: [2000], home: '/home/u' });
    assert.deepEqual(getExecUser(root, '1000:extra'), { uid: 1000, gid: 2000, sgids: [], home: '/home/u' });
    assert.deepEqual(getExecUser(root, '4321:99').uid, 4321);
    assert.equal(
      msg(() => getExecUser(root, 'nobody')),
      'unable to find user nobody: no matching entries in passwd file',
    );
    assert.equal(
      msg(() => getExecUser(root, '1234:nogroup')),
      'unable to find group nogroup: no matching entries in group file',
    );
    assert.deepEqual(getAdditionalGroups(root, ['extra', '5']), [2000, 5]);
    // runc (dockerd 20.10): each gid once; a name whose group is already added is not found
    assert.deepEqual(getAdditionalGroups(root, ['5', '5', 'extra', '2000', '0005']), [5, 2000]);
    assert.equal(
      msg(() => getAdditionalGroups(root, ['extra', 'extra'])),
      'Unable to find group extra: no matching entries in group file',
    );
    assert.equal(
      msg(() => getAdditionalGroups(root, ['nosuch'])),
      'Unable to find group nosuch: no matching entries in group file',
    );
  });
});

describe('seccomp', () => {
  const p = loadSeccompProfile();
  test('default profile resolved for the default caps', () => {
    const s = resolveSeccomp(p, { bounding: DEFAULT_CAPS, arch: 'amd64', kernel: [6, 1] })!;
    assert.equal(s.defaultAction, 'SCMP_ACT_ERRNO');
    assert.deepEqual(s.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const names = new Set(s.syscalls!.flatMap((c) => (c.action === 'SCMP_ACT_ALLOW' ? c.names : [])));
    for (const n of ['read', 'chroot', 'ptrace']) assert.ok(names.has(n), n);
    for (const n of ['mount', 'keyctl', 'reboot', 'setns']) assert.ok(!names.has(n), n);
  });
  test('CAP_SYS_ADMIN unlocks mount; old kernels lose ptrace', () => {
    const s = resolveSeccomp(p, { bounding: [...DEFAULT_CAPS, 'CAP_SYS_ADMIN'], arch: 'amd64', kernel: [6, 1] })!;
    assert.ok(s.syscalls!.some((c) => c.names.includes('mount')));
    const old = resolveSeccomp(p, { bounding: DEFAULT_CAPS, arch: 'amd64', kernel: [4, 4] })!;
    assert.ok(!old.syscalls!.some((c) => c.names.length === 1 && c.names[0] === 'ptrace'));
  });
});

describe('buildSpec', () => {
  const mk = () => {
    const c = new Container(tmp, 'a'.repeat(64), 'x');
    c.Path = 'sh';
    c.Config = { Hostname: 'h', Env: ['PATH=/bin'] };
    c.HostConfig = { NetworkMode: 'none', IpcMode: 'private', ShmSize: 1 << 26 };
    return c;
  };
  test('--privileged: all caps, no masks, no seccomp, rw /sys and cgroup, all devices', () => {
    const c = mk();
    c.HostConfig.Privileged = true;
    const { spec } = buildSpec({ container: c, rootfs: root, sysctlExists: () => false });
    assert.equal(spec.process.capabilities?.bounding?.length, 38);
    assert.equal(spec.linux.maskedPaths, undefined);
    assert.equal(spec.linux.readonlyPaths, undefined);
    assert.equal(spec.linux.seccomp, undefined);
    assert.ok(!spec.mounts.find((m) => m.destination === '/sys')?.options?.includes('ro'));
    assert.ok(!spec.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.options?.includes('ro'));
    assert.deepEqual(spec.linux.resources?.devices, [{ allow: true, access: 'rwm' }]);
    assert.ok((spec.linux.devices?.length ?? 0) > 0);
  });
  test('seccomp=unconfined, systemd cgroups, ipc none, tty env', () => {
    const c = mk();
    c.SeccompProfile = 'unconfined';
    c.HostConfig.IpcMode = 'none';
    c.Config.Tty = true;
    const { spec } = buildSpec({
      container: c,
      rootfs: root,
      daemon: { cgroupDriver: 'systemd' },
      sysctlExists: () => false,
    });
    assert.equal(spec.linux.seccomp, undefined);
    assert.equal(spec.linux.cgroupsPath, `system.slice:berth:${c.ID}`);
    assert.ok(!spec.mounts.some((m) => m.destination === '/dev/shm'));
    assert.deepEqual(spec.process.env, ['PATH=/bin', 'HOSTNAME=h', 'TERM=xterm']);
    assert.equal(spec.process.terminal, true);
  });
  test('default-ulimits merge under --ulimit', () => {
    const c = mk();
    c.HostConfig.Ulimits = [{ Name: 'nofile', Soft: 1, Hard: 2 }];
    const { spec } = buildSpec({
      container: c,
      rootfs: root,
      daemon: {
        defaultUlimits: { nofile: { name: 'nofile', soft: 9, hard: 9 }, core: { name: 'core', soft: 0, hard: 0 } },
      },
    });
    assert.deepEqual(spec.process.rlimits, [
      { type: 'RLIMIT_NOFILE', hard: 2, soft: 1 },
      { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
    ]);
  });
  test('tmpfs option merge as moby', () => {
    assert.deepEqual(
      mergeTmpfsOptions(['noexec', 'nosuid', 'nodev', 'rprivate', 'rw', 'noexec', 'size=65536k', 'mode=1770']),
      ['nosuid', 'nodev', 'rprivate', 'rw', 'noexec', 'size=65536k', 'mode=1770'],
    );
    assert.deepEqual(mergeTmpfsOptions(['noexec', 'exec', 'size=1m', 'size=2m']), ['exec', 'size=2m']);
  });
});
