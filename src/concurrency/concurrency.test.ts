import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyedMutex, Semaphore, Singleflight } from './index.js';

test('KeyedMutex serialises per key, not across keys', async () => {
  const m = new KeyedMutex();
  const log: string[] = [];
  const job = (k: string, id: string, ms: number) =>
    m.run(k, async () => {
      log.push(`start ${id}`);
      await sleep(ms);
      log.push(`end ${id}`);
    });
  await Promise.all([job('a', 'a1', 20), job('a', 'a2', 1), job('b', 'b1', 1)]);
  assert.ok(log.indexOf('end a1') < log.indexOf('start a2'));
  assert.ok(log.indexOf('start b1') < log.indexOf('end a1'));
  await assert.rejects(
    m.run('a', async () => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(await m.run('a', async () => 7), 7);
});

test('Semaphore bounds concurrency and follows setLimit', async () => {
  const s = new Semaphore(2);
  let active = 0;
  let peak = 0;
  const task = () =>
    s.run(async () => {
      active++;
      peak = Math.max(peak, active);
      await sleep(5);
      active--;
    });
  await Promise.all(Array.from({ length: 8 }, task));
  assert.equal(peak, 2);
  s.setLimit(4);
  peak = 0;
  await Promise.all(Array.from({ length: 8 }, task));
  assert.equal(peak, 4);
});

test('Singleflight shares one in-flight call per key', async () => {
  const sf = new Singleflight<number>();
  let calls = 0;
  const f = () =>
    sf.do('k', async () => {
      await sleep(5);
      return ++calls;
    });
  assert.deepEqual(await Promise.all([f(), f(), f()]), [1, 1, 1]);
  assert.equal(await f(), 2);
});
