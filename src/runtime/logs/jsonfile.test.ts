// json-file logs: rotation by the shim (real container) and the reader
// (tail, since/until, stream selection, follow across rotation), plus parsing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { resolveLogSettings } from '../log-config.js';
import { Sandbox } from '../testkit.js';
import {
  fixedTimestamp,
  type LogRecord,
  logFiles,
  parseEntry,
  parseRfc3339Ns,
  readJsonLog,
  timeKey,
} from './jsonfile.js';

const sb = new Sandbox();
after(() => sb.cleanup());
const T = { timeout: 60_000 };

async function all(gen: AsyncGenerator<LogRecord[]>): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const b of gen) out.push(...b);
  return out;
}

test('parseEntry: fast path and escapes match JSON.parse', () => {
  const lines = [
    '{"log":"hello\\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}',
    '{"log":"\\u003cx\\u003e \\u0026 \\"q\\" \\\\ \\u0009\\ufffd\\n","stream":"stderr","time":"2024-01-02T03:04:05Z"}',
    '{"log":"a\\\\","stream":"stdout","attrs":{"k":"v"},"time":"2024-01-02T03:04:05.1Z"}',
    '{"log":"ünïcødé ✓\\n","stream":"stdout","time":"2024-01-02T03:04:05.5Z"}',
    '{"stream":"stdout","log":"reordered\\n","time":"2024-01-02T03:04:05.5Z"}',
  ];
  for (const l of lines) {
    const j = JSON.parse(l) as { log: string; stream: string; time: string; attrs?: Record<string, string> };
    const r = parseEntry(Buffer.from(l), true)!;
    assert.equal(r.line.toString('utf8'), j.log);
    assert.equal(r.stream, j.stream);
    assert.equal(r.time, j.time);
    assert.deepEqual(r.attrs, j.attrs);
  }
  assert.equal(parseEntry(Buffer.from('garbage')), null);
  assert.equal(timeKey('2024-01-02T03:04:05.1Z'), '2024-01-02T03:04:05.100000000');
  assert.ok(timeKey('2024-01-02T03:04:05.1Z') > timeKey('2024-01-02T03:04:05.09Z'));
  assert.equal(fixedTimestamp('2024-01-02T03:04:05Z'), '2024-01-02T03:04:05.000000000Z');
  assert.equal(parseRfc3339Ns('1970-01-01T00:00:01.5Z'), 1_500_000_000n);
});

test('log settings: default rotation 20 MiB x 5, Docker semantics when set, validation', () => {
  const ctx = { id: 'a'.repeat(64), name: '/web', labels: { team: 'x', other: 'y' }, env: ['A=1', 'B=2'] };
  const d = resolveLogSettings('json-file', {}, '/l', ctx);
  assert.deepEqual([d.maxSize, d.maxFile, d.attrs], [20 * 1024 * 1024, 5, undefined]);
  const s = resolveLogSettings('json-file', { 'max-size': '10k' }, '/l', ctx);
  assert.deepEqual([s.maxSize, s.maxFile], [10_000, 1]);
  const u = resolveLogSettings('json-file', { 'max-size': '-1' }, '/l', ctx);
  assert.equal(u.maxSize, -1);
  const a = resolveLogSettings('json-file', { labels: 'team', env: 'B', tag: '{{.Name}}/{{.ID}}' }, '/l', ctx);
  assert.equal(a.attrs, '{"B":"2","tag":"web/aaaaaaaaaaaa","team":"x"}');
  assert.throws(
    () => resolveLogSettings('json-file', { 'max-file': '0' }, '/l', ctx),
    /max-file cannot be less than 1/,
  );
  assert.throws(() => resolveLogSettings('json-file', { bogus: '1' }, '/l', ctx), /unknown log opt 'bogus'/);
  assert.throws(() => resolveLogSettings('nope', {}, '/l', ctx), /no log driver named 'nope'/);
  assert.equal(resolveLogSettings('none', {}, '/l', ctx).driver, 'none');
});

test('rotation by the shim: max-size/max-file respected, reader tail/since/until across files', T, async () => {
  const id = sb.newId();
  const N = 3000;
  const c = await sb.spawn(
    id,
    { args: ['sh', '-c', `i=0; while [ $i -lt ${N} ]; do echo "line-$i"; i=$((i+1)); done; echo bye >&2`] },
    { log: { driver: 'json-file', path: sb.logPath(id), maxSize: 20_000, maxFile: 3, attrs: '{"team":"x"}' } },
  );
  await c.start();
  assert.equal((await c.wait()).exitCode, 0);
  await c.delete();
  const lp = sb.logPath(id);
  const files = fs
    .readdirSync(path.dirname(lp))
    .filter((f) => f.startsWith(`${id}-json.log`))
    .sort();
  assert.deepEqual(files, [`${id}-json.log`, `${id}-json.log.1`, `${id}-json.log.2`]);
  for (const f of [`${lp}.1`, `${lp}.2`]) {
    const size = fs.statSync(f).size;
    const lastLen = fs.readFileSync(f, 'utf8').trimEnd().split('\n').pop()!.length + 1;
    assert.ok(size >= 20_000 && size < 20_000 + lastLen, `${f}: ${size} bytes (rotates once max-size is reached)`);
  }
  assert.deepEqual(logFiles(lp, 3), [`${lp}.2`, `${lp}.1`, lp]);

  const recs = await all(readJsonLog(lp, { maxFile: 3, details: true }));
  const nums = recs.filter((r) => r.stream === 'stdout').map((r) => Number(/line-(\d+)/.exec(r.line.toString())![1]));
  // only the newest files survive: a contiguous run ending at N-1
  assert.equal(nums[nums.length - 1], N - 1);
  for (let i = 1; i < nums.length; i++) assert.equal(nums[i], nums[i - 1]! + 1);
  assert.ok(nums[0]! > 0, 'the oldest lines were rotated away');
  assert.deepEqual(recs[0]!.attrs, { team: 'x' });
  assert.equal(recs[recs.length - 1]!.line.toString(), 'bye\n');

  // tail N reads from the end, across files
  for (const n of [0, 1, 10, 250, 600, 100_000]) {
    const t = await all(readJsonLog(lp, { tail: n, maxFile: 3 }));
    assert.deepEqual(
      t,
      recs.slice(Math.max(0, recs.length - n)).map(({ attrs: _a, ...r }) => r),
      `tail ${n}`,
    );
  }
  // stream selection
  const errs = await all(readJsonLog(lp, { stdout: false }));
  assert.deepEqual(
    errs.map((r) => r.line.toString()),
    ['bye\n'],
  );
  // since/until (inclusive) by timestamp
  const mid = recs[Math.floor(recs.length / 2)]!;
  const midNs = parseRfc3339Ns(mid.time);
  const since = await all(readJsonLog(lp, { since: midNs }));
  assert.ok(since.length > 0 && since.every((r) => timeKey(r.time) >= timeKey(mid.time)));
  assert.equal(since.length, recs.filter((r) => timeKey(r.time) >= timeKey(mid.time)).length);
  const untilR = await all(readJsonLog(lp, { until: midNs }));
  assert.equal(untilR.length, recs.filter((r) => timeKey(r.time) <= timeKey(mid.time)).length);
});

test('follow: across rotation until the container stops', T, async () => {
  const id = sb.newId();
  const N = 400;
  const c = await sb.spawn(
    id,
    {
      args: [
        'sh',
        '-c',
        `sleep 0.3; i=0; while [ $i -lt ${N} ]; do echo "f-$i"; i=$((i+1)); [ $((i % 50)) = 0 ] && sleep 0.05; done`,
      ],
    },
    { log: { driver: 'json-file', path: sb.logPath(id), maxSize: 4000, maxFile: 10 } },
  );
  const stopped = c.wait();
  await c.start();
  const got: string[] = [];
  for await (const b of readJsonLog(sb.logPath(id), { follow: true, tail: 0, stopped, pollMs: 10, maxFile: 10 })) {
    for (const r of b) got.push(r.line.toString().trim());
  }
  await c.delete();
  assert.ok(fs.existsSync(`${sb.logPath(id)}.3`), 'rotated several times while following');
  assert.equal(got.length, N, `followed ${got.length} lines`);
  assert.deepEqual(
    got,
    Array.from({ length: N }, (_, i) => `f-${i}`),
  );
});

test('read speed: 100 000 lines', T, async () => {
  const dir = fs.mkdtempSync(path.join(sb.root, 'speed-'));
  const lp = path.join(dir, 'x-json.log');
  const parts: string[] = [];
  const t0 = Date.parse('2024-01-01T00:00:00Z');
  for (let i = 0; i < 100_000; i++) {
    const ns = String((i * 7919) % 1_000_000_000).padStart(9, '0');
    const ts = `${new Date(t0 + i).toISOString().slice(0, 19)}.${ns}`.replace(/0+$/, '');
    parts.push(
      `{"log":"line number ${i} with some text\\n","stream":"${i % 3 ? 'stdout' : 'stderr'}","time":"${ts}Z"}\n`,
    );
  }
  fs.writeFileSync(lp, parts.join(''));
  let t = performance.now();
  let n = 0;
  for await (const b of readJsonLog(lp)) n += b.length;
  const full = performance.now() - t;
  assert.equal(n, 100_000);
  t = performance.now();
  const tail = await all(readJsonLog(lp, { tail: 10 }));
  const tailMs = performance.now() - t;
  assert.equal(tail.length, 10);
  assert.equal(tail[9]!.line.toString(), 'line number 99999 with some text\n');
  console.log(`json-file read: 100000 lines in ${full.toFixed(0)} ms; tail 10 in ${tailMs.toFixed(1)} ms`);
});
