import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { atomicWriteFile, atomicWriteFileSync, removeViaRename, sweepLeftovers, WriteSet } from './index.js';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fsutil-'));
}

test('atomicWriteFile replaces content and leaves no temp files', async () => {
  const dir = tmp();
  const f = path.join(dir, 'repositories.json');
  await atomicWriteFile(f, 'one');
  atomicWriteFileSync(f, 'two', { mode: 0o600 });
  assert.equal(fs.readFileSync(f, 'utf8'), 'two');
  assert.deepEqual(fs.readdirSync(dir), ['repositories.json']);
  fs.rmSync(dir, { recursive: true });
});

test('WriteSet commits a group of files with one rename and refuses an existing target', async () => {
  const dir = tmp();
  const ws = await WriteSet.create(path.join(dir, 'tmp'));
  await ws.writeFile('diff', 'sha256:x');
  ws.writeFileSync('size', '12');
  await ws.commit(path.join(dir, 'entry'));
  assert.deepEqual(fs.readdirSync(path.join(dir, 'entry')).sort(), ['diff', 'size']);
  const ws2 = await WriteSet.create(path.join(dir, 'tmp'));
  await ws2.writeFile('diff', 'other');
  await assert.rejects(ws2.commit(path.join(dir, 'entry')), (e: NodeJS.ErrnoException) =>
    ['EEXIST', 'ENOTEMPTY'].includes(e.code ?? ''),
  );
  await ws2.cancel();
  assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), []);
  fs.rmSync(dir, { recursive: true });
});

test('removeViaRename and sweepLeftovers', async () => {
  const dir = tmp();
  fs.mkdirSync(path.join(dir, 'a', 'b'), { recursive: true });
  await removeViaRename(path.join(dir, 'a'));
  await removeViaRename(path.join(dir, 'missing'));
  assert.deepEqual(fs.readdirSync(dir), []);
  fs.mkdirSync(path.join(dir, 'x-1234-removing'));
  fs.writeFileSync(path.join(dir, '.tmp-file-abc'), '');
  fs.writeFileSync(path.join(dir, 'keep'), '');
  assert.deepEqual((await sweepLeftovers(dir)).sort(), ['.tmp-file-abc', 'x-1234-removing']);
  assert.deepEqual(fs.readdirSync(dir), ['keep']);
  fs.rmSync(dir, { recursive: true });
});
