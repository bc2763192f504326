import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { native } from './index.js';

const root = process.getuid?.() === 0;

test('crc64 is CRC-64/GO-ISO (check value of "123456789") and continues across calls', () => {
  assert.equal(native.crc64(Buffer.from('123456789')), 0xb90956c775a41001n);
  const data = Buffer.alloc(100_003);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
  const whole = native.crc64(data);
  let part = 0n;
  for (let off = 0; off < data.length; off += 4099) part = native.crc64(data.subarray(off, off + 4099), part);
  assert.equal(part, whole);
  assert.equal(native.crc64(Buffer.alloc(0)), 0n);
});

test('xattrs: set, get, list, remove; absent reads as null', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-native-'));
  try {
    const f = path.join(dir, 'f');
    fs.writeFileSync(f, 'x');
    native.lsetxattr(f, 'user.berth', Buffer.from('v1'));
    assert.deepEqual(native.lgetxattr(f, 'user.berth'), Buffer.from('v1'));
    assert.ok(native.llistxattr(f).includes('user.berth'));
    assert.equal(native.lgetxattr(f, 'user.absent'), null);
    assert.equal(native.lremovexattr(f, 'user.berth'), true);
    assert.equal(native.lremovexattr(f, 'user.berth'), false);
    assert.throws(
      () => native.lgetxattr(path.join(dir, 'missing'), 'user.x'),
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT',
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('mknod makes a 0:0 character device (an overlay whiteout); errors carry errno codes', {
  skip: !root && 'needs root',
}, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-native-'));
  try {
    const wh = path.join(dir, 'wh');
    native.mknod(wh, fs.constants.S_IFCHR | 0o000, 0, 0);
    const st = fs.lstatSync(wh);
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, 0);
    assert.throws(
      () => native.mknod(wh, fs.constants.S_IFCHR, 0, 0),
      (e: NodeJS.ErrnoException) => e.code === 'EEXIST',
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('mount and umount2 a tmpfs', { skip: !root && 'needs root' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-native-'));
  try {
    native.mount('tmpfs', dir, 'tmpfs', 0, 'size=1m');
    fs.writeFileSync(path.join(dir, 'in-tmpfs'), 'x');
    assert.match(fs.readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${dir} `));
    native.umount2(dir, 0);
    assert.equal(fs.existsSync(path.join(dir, 'in-tmpfs')), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('umount2Async unmounts off the event loop; its errors carry errno codes', {
  skip: !root && 'needs root',
}, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-native-umount-'));
  try {
    native.mount('tmpfs', dir, 'tmpfs', 0, 'size=1m');
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    await native.umount2Async(dir, 2);
    assert.ok(!fs.existsSync(path.join(dir, 'f')));
    await assert.rejects(native.umount2Async(dir, 0), (e: NodeJS.ErrnoException) => {
      assert.equal(e.code, 'EINVAL');
      assert.equal(e.syscall, 'umount2');
      assert.equal(e.path, dir);
      return true;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('spawn: a new session, signals reset, socket-pair stdio, reaped with waitpid', async () => {
  // the child reports its session id and its ignored signals (Node ignores SIGPIPE; the child must not
  // inherit that), echoes fd 0 to fd 3, and says nothing on fd 2 (/dev/null)
  const script = 'echo "sid=$(cut -d" " -f6 /proc/$$/stat) pid=$$"; grep SigIgn /proc/$$/status; cat >&3; exit 3';
  const { pid, fds } = await native.spawn('/bin/sh', ['sh', '-c', script], [1, 1, 0, 1], true);
  assert.equal(fds.length, 4);
  assert.equal(fds[2], -1);
  const readAll = (fd: number) =>
    new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = fs.createReadStream('', { fd });
      s.on('data', (c) => chunks.push(c as Buffer));
      s.on('end', () => resolve(Buffer.concat(chunks).toString()));
      s.on('error', reject);
    });
  fs.writeSync(fds[0]!, 'to fd 3\n');
  fs.closeSync(fds[0]!);
  const [out, three] = await Promise.all([readAll(fds[1]!), readAll(fds[3]!)]);
  const sid = /sid=(\d+) pid=(\d+)/.exec(out);
  assert.ok(sid, out);
  assert.equal(sid[1], sid[2], 'the child leads its own session');
  assert.equal(Number(sid[2]), pid);
  // none of the standard signals 1-31 (SIGPIPE above all) is ignored; 32 and 33 belong to glibc, which
  // posix_spawn cannot reset, and are ignored in this sandbox's processes from the start
  const ign = BigInt(`0x${/SigIgn:\s+([0-9a-f]+)/.exec(out)?.[1] ?? 'x'}`);
  assert.equal(ign & 0x7fffffffn, 0n, `SigIgn ${ign.toString(16)}`);
  assert.equal(three, 'to fd 3\n');
  let st: { code: number; signal: number } | null = null;
  for (let i = 0; i < 200 && !st; i++) {
    st = native.waitpid(pid, true);
    if (!st) await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(st, { code: 3, signal: 0 });
  assert.throws(() => native.waitpid(pid, true), /ECHILD/);
  await assert.rejects(native.spawn('/no/such/file', ['x'], [0, 0, 0], false), /ENOENT: .*posix_spawn/);
});
