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
