// The storage driver contract, run against every driver (filesystem, in-memory):
// an object-store driver must pass the same suite.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  FilesystemDriver,
  InMemoryDriver,
  InvalidPathError,
  PathNotFoundError,
  type StorageDriver,
} from '../../src/registry/storage/index.js';
import { tempDir } from './helpers.js';

async function readAll(s: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c as Buffer));
  return Buffer.concat(parts);
}

function suite(label: string, make: () => StorageDriver) {
  describe(`storage driver: ${label}`, () => {
    test('putContent/getContent round-trip and overwrite', async () => {
      const d = make();
      await d.putContent('/a/b/c', 'one');
      assert.equal((await d.getContent('/a/b/c')).toString(), 'one');
      await d.putContent('/a/b/c', Buffer.from('two!'));
      assert.equal((await d.getContent('/a/b/c')).toString(), 'two!');
      assert.equal((await d.stat('/a/b/c')).size, 4);
      assert.equal((await d.stat('/a/b')).isDir, true);
    });
    test('missing paths raise PathNotFoundError everywhere', async () => {
      const d = make();
      await assert.rejects(d.getContent('/nope'), PathNotFoundError);
      await assert.rejects(d.stat('/nope'), PathNotFoundError);
      await assert.rejects(d.list('/nope'), PathNotFoundError);
      await assert.rejects(d.reader('/nope'), PathNotFoundError);
      await assert.rejects(d.move('/nope', '/x'), PathNotFoundError);
      await assert.rejects(d.delete('/nope'), PathNotFoundError);
    });
    test('invalid paths are refused', async () => {
      const d = make();
      for (const p of ['relative', '/a/../b', '/a//b', '/a/./b', '/a/b/', '/a b', '']) {
        await assert.rejects(d.putContent(p, 'x'), InvalidPathError, p);
      }
    });
    test('reader honours offset and length', async () => {
      const d = make();
      await d.putContent('/r/data', '0123456789');
      assert.equal((await readAll(await d.reader('/r/data', 3))).toString(), '3456789');
      assert.equal((await readAll(await d.reader('/r/data', 2, 4))).toString(), '2345');
      assert.equal((await readAll(await d.reader('/r/data', 10))).toString(), '');
      await assert.rejects(d.reader('/r/data', 11));
    });
    test('writer: write, commit, append, cancel', async () => {
      const d = make();
      const w = await d.writer('/w/data', false);
      await w.write(Buffer.from('abc'));
      await w.write(Buffer.from('def'));
      assert.equal(w.size, 6);
      await w.commit();
      assert.equal((await d.getContent('/w/data')).toString(), 'abcdef');
      const a = await d.writer('/w/data', true);
      assert.equal(a.size, 6);
      await a.write(Buffer.from('gh'));
      await a.commit();
      assert.equal((await d.getContent('/w/data')).toString(), 'abcdefgh');
      const c = await d.writer('/w/data', true);
      await c.write(Buffer.from('zz'));
      await c.cancel();
      await assert.rejects(d.getContent('/w/data'), PathNotFoundError);
    });
    test('list is sorted full paths; move replaces; delete removes subtrees', async () => {
      const d = make();
      for (const p of ['/l/b', '/l/a/x', '/l/c/y/z']) await d.putContent(p, p);
      assert.deepEqual(await d.list('/l'), ['/l/a', '/l/b', '/l/c']);
      await d.putContent('/m/dst', 'old');
      await d.move('/l/b', '/m/dst');
      assert.equal((await d.getContent('/m/dst')).toString(), '/l/b');
      await assert.rejects(d.stat('/l/b'), PathNotFoundError);
      await d.move('/l/a/x', '/new/deep/place');
      assert.equal((await d.getContent('/new/deep/place')).toString(), '/l/a/x');
      await d.delete('/l/c');
      await assert.rejects(d.stat('/l/c/y/z'), PathNotFoundError);
    });
    test('walk visits in lexical order and honours skip-dir and stop', async () => {
      const d = make();
      for (const p of ['/w/a/1', '/w/a/2', '/w/b/1', '/w/c']) await d.putContent(p, 'x');
      const seen: string[] = [];
      await d.walk('/w', (fi) => {
        seen.push(fi.path);
        return fi.path === '/w/b' ? 'skip-dir' : undefined;
      });
      assert.deepEqual(seen, ['/w/a', '/w/a/1', '/w/a/2', '/w/b', '/w/c']);
      const some: string[] = [];
      await d.walk('/w', (fi) => {
        some.push(fi.path);
        return some.length === 2 ? 'stop' : undefined;
      });
      assert.equal(some.length, 2);
    });
  });
}

suite('filesystem', () => new FilesystemDriver(tempDir('drv-')));
suite('inmemory', () => new InMemoryDriver());

test('filesystem driver: putContent leaves no temp files and maps under the root only', async () => {
  const root = tempDir('drv-');
  const d = new FilesystemDriver(root);
  await d.putContent('/docker/registry/v2/x/link', 'sha256:abc');
  assert.deepEqual(fs.readdirSync(path.join(root, 'docker/registry/v2/x')), ['link']);
  assert.equal(fs.readFileSync(path.join(root, 'docker/registry/v2/x/link'), 'utf8'), 'sha256:abc');
});
