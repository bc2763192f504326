// local log driver: the protobuf frame encoder/decoder (partial messages too),
// the shim's writer (same records as json-file, rotation, compression by
// compressRotated) and the reader (tail, since/until, follow).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import zlib from 'node:zlib';
import { resolveLogSettings } from '../log-config.js';
import { Sandbox } from '../testkit.js';
import { type LogRecord, readJsonLog } from './jsonfile.js';
import {
  compressRotated,
  decodeFrames,
  decodeLogEntry,
  encodeLocalEntry,
  entryToRecord,
  gzipLastTime,
  type LocalEntry,
  localLogFiles,
  nsToRfc3339Nano,
  readLocalLog,
} from './local.js';

const sb = new Sandbox();
after(() => sb.cleanup());
const T = { timeout: 60_000 };

async function all(gen: AsyncGenerator<LogRecord[]>): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const b of gen) out.push(...b);
  return out;
}

test('local frames: encode/decode round trip, partial metadata, proto3 defaults, unknown fields', () => {
  const entries: LocalEntry[] = [
    { source: 'stdout', timeNano: 1_700_000_000_123_456_789n, line: Buffer.from('hello'), partial: false },
    { source: 'stderr', timeNano: 1n, line: Buffer.alloc(0), partial: false },
    {
      source: 'stdout',
      timeNano: 1_700_000_000_000_000_000n,
      line: Buffer.alloc(16 * 1024, 0x61),
      partial: true,
      partialMeta: { last: false, id: 'f'.repeat(64), ordinal: 1 },
    },
    {
      source: 'stdout',
      timeNano: 1_700_000_000_000_000_001n,
      line: Buffer.from('tail ✓'),
      partial: true,
      partialMeta: { last: true, id: 'f'.repeat(64), ordinal: 300 },
    },
    {
      source: 'stdout',
      timeNano: 5n,
      line: Buffer.from('with attrs'),
      partial: false,
      attrs: [
        ['tag', 'web/1'],
        ['team', 'x'],
      ],
    },
  ];
  const buf = Buffer.concat(entries.map(encodeLocalEntry));
  const out: LocalEntry[] = [];
  assert.equal(decodeFrames(buf, 0, buf.length, out), buf.length);
  assert.deepEqual(out, entries);
  // hand-checked bytes: source "stdout", time_nano 1, line "a"
  const one = encodeLocalEntry({ source: 'stdout', timeNano: 1n, line: Buffer.from('a'), partial: false });
  assert.equal(one.toString('hex'), `0000000d${'0a06' + Buffer.from('stdout').toString('hex')}1001${'1a0161'}0000000d`);
  // an incomplete trailing frame (a write in progress) is left for later
  const part: LocalEntry[] = [];
  assert.equal(decodeFrames(buf, 0, buf.length - 3, part), buf.length - encodeLocalEntry(entries[4]!).length);
  assert.deepEqual(entryToRecord(entries[4]!, true).attrs, { tag: 'web/1', team: 'x' });
  assert.equal(entryToRecord(entries[4]!).attrs, undefined);
  assert.equal(part.length, entries.length - 1);
  // moby's attrs (field 6, repeated LogAttr) are skipped
  const withAttrs = Buffer.concat([Buffer.from('0a067374646f7574', 'hex'), Buffer.from('32060a016b120176', 'hex')]);
  assert.deepEqual(decodeLogEntry(withAttrs).source, 'stdout');
  // records: "\n" back unless a partial piece that does not end the line
  assert.equal(entryToRecord(entries[0]!).line.toString(), 'hello\n');
  assert.equal(entryToRecord(entries[2]!).line.length, 16 * 1024);
  assert.equal(entryToRecord(entries[3]!).line.toString(), 'tail ✓\n');
  assert.equal(entryToRecord(entries[1]!).stream, 'stderr');
  assert.equal(nsToRfc3339Nano(1_700_000_000_123_456_789n), '2023-11-14T22:13:20.123456789Z');
  assert.equal(nsToRfc3339Nano(1_700_000_000_100_000_000n), '2023-11-14T22:13:20.1Z');
  assert.equal(nsToRfc3339Nano(1_700_000_000_000_000_000n), '2023-11-14T22:13:20Z');
});

test('local log settings: moby defaults 20m x 5, compress true; validation', () => {
  const ctx = { id: 'a'.repeat(64) };
  const d = resolveLogSettings('local', {}, '/l', ctx);
  assert.deepEqual([d.driver, d.maxSize, d.maxFile, d.compress], ['local', 20 * 1024 * 1024, 5, true]);
  const s = resolveLogSettings('local', { 'max-size': '10k', 'max-file': '3', compress: 'false' }, '/l', ctx);
  assert.deepEqual([s.maxSize, s.maxFile, s.compress], [10_000, 3, false]);
  assert.throws(() => resolveLogSettings('local', { 'max-file': '1' }, '/l', ctx), /compression cannot be enabled/);
  assert.equal(resolveLogSettings('local', { 'max-file': '1', compress: 'false' }, '/l', ctx).maxFile, 1);
  const a = resolveLogSettings('local', { labels: 'team', tag: '{{.ID}}' }, '/l', { ...ctx, labels: { team: 'x' } });
  assert.deepEqual(decodeLogEntry(Buffer.from(a.attrsPb!, 'hex')).attrs, [
    ['tag', 'aaaaaaaaaaaa'],
    ['team', 'x'],
  ]);
  assert.throws(
    () => resolveLogSettings('local', { bogus: '1' }, '/l', ctx),
    /unknown log opt 'bogus' for log driver local/,
  );
});

const SCRIPT =
  "echo a; echo b >&2; printf '<x> & \"q\" \\t\\r\\n'; printf '%20000s\\n' x | tr ' ' y; printf 'no newline'";

test('the shim writes local frames: same records as json-file for the same output', T, async () => {
  const recs: Record<string, LogRecord[]> = {};
  for (const driver of ['json-file', 'local'] as const) {
    const id = sb.newId();
    const lp = driver === 'local' ? path.join(sb.stateDir(id), 'local-logs', 'container.log') : sb.logPath(id);
    fs.mkdirSync(path.dirname(lp), { recursive: true });
    const c = await sb.spawn(
      id,
      { args: ['sh', '-c', SCRIPT] },
      { log: { driver, path: lp, maxSize: -1, maxFile: 1 } },
    );
    await c.start();
    assert.equal((await c.wait()).exitCode, 0);
    await c.delete();
    recs[driver] = await all(driver === 'local' ? readLocalLog(lp) : readJsonLog(lp));
    if (driver === 'local') {
      const raw = fs.readFileSync(lp);
      const es: LocalEntry[] = [];
      assert.equal(decodeFrames(raw, 0, raw.length, es), raw.length);
      const long = es.filter((e) => e.partial);
      // 20001 bytes = one full 16 KiB piece, the rest (last=true), then "no newline" (partial, not last)
      assert.deepEqual(
        long.map((e) => [e.partialMeta?.ordinal, e.partialMeta?.last, e.line.length]),
        [
          [1, false, 16384],
          [2, true, 20000 - 16384],
          [1, false, 10],
        ],
      );
      assert.equal(long[0]!.partialMeta!.id, long[1]!.partialMeta!.id);
      assert.notEqual(long[0]!.partialMeta!.id, long[2]!.partialMeta!.id);
      assert.equal(long[0]!.partialMeta!.id.length, 64);
    }
  }
  // per stream: stdout and stderr are separate pipes, their interleaving differs from run to run
  for (const s of ['stdout', 'stderr']) {
    const strip = (rs: LogRecord[]) => rs.filter((r) => r.stream === s).map((r) => r.line.toString('latin1'));
    assert.ok(strip(recs.local!).join('') === strip(recs['json-file']!).join(''), `${s} differs`);
    assert.deepEqual(
      strip(recs.local!).map((l) => l.length),
      strip(recs['json-file']!).map((l) => l.length),
    );
  }
  assert.equal(recs.local![0]!.line.toString(), 'a\n');
  assert.match(recs.local![0]!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
});

test('local rotation by the shim, gzip by compressRotated; reader tail/since/until across .gz files', T, async () => {
  const id = sb.newId();
  const lp = path.join(sb.stateDir(id), 'local-logs', 'container.log');
  fs.mkdirSync(path.dirname(lp), { recursive: true });
  const N = 3000;
  const c = await sb.spawn(
    id,
    { args: ['sh', '-c', `i=0; while [ $i -lt ${N} ]; do echo "line-$i"; i=$((i+1)); done; echo bye >&2`] },
    { log: { driver: 'local', path: lp, maxSize: 20_000, maxFile: 3, compress: true } },
  );
  await c.start();
  assert.equal((await c.wait()).exitCode, 0);
  await c.delete();
  const dir = path.dirname(lp);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['container.log', 'container.log.1', 'container.log.2']);
  const plain = await all(readLocalLog(lp, { maxFile: 3 }));
  compressRotated(lp, 3);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['container.log', 'container.log.1.gz', 'container.log.2.gz']);
  assert.deepEqual(localLogFiles(lp, 3), [`${lp}.2.gz`, `${lp}.1.gz`, lp]);
  // rotated files: whole frames, rotation once max-size was reached
  const gz1 = fs.readFileSync(`${lp}.1.gz`);
  const one = zlib.gunzipSync(gz1);
  // moby's header metadata: lastTime = the file's last entry
  const oneEntries: LocalEntry[] = [];
  decodeFrames(one, 0, one.length, oneEntries);
  assert.equal(gzipLastTime(gz1), oneEntries[oneEntries.length - 1]!.timeNano);
  assert.ok(one.length >= 20_000 && one.length < 20_100, `${one.length}`);
  const recs = await all(readLocalLog(lp, { maxFile: 3 }));
  assert.deepEqual(recs, plain);
  const nums = recs.filter((r) => r.stream === 'stdout').map((r) => Number(/line-(\d+)/.exec(r.line.toString())![1]));
  assert.equal(nums[nums.length - 1], N - 1);
  for (let i = 1; i < nums.length; i++) assert.equal(nums[i], nums[i - 1]! + 1);
  assert.ok(nums[0]! > 0);
  assert.equal(recs[recs.length - 1]!.line.toString(), 'bye\n');
  for (const n of [0, 1, 10, 600, 100_000]) {
    assert.deepEqual(await all(readLocalLog(lp, { tail: n, maxFile: 3 })), recs.slice(Math.max(0, recs.length - n)));
  }
  assert.deepEqual(
    (await all(readLocalLog(lp, { stdout: false }))).map((r) => r.line.toString()),
    ['bye\n'],
  );
  const ns = (t: string) => {
    const m = /^(.*?)(?:\.(\d+))?Z$/.exec(t)!;
    return BigInt(Date.parse(`${m[1]}Z`)) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
  };
  const mid = recs[Math.floor(recs.length / 2)]!;
  const since = await all(readLocalLog(lp, { since: ns(mid.time), maxFile: 3 }));
  assert.ok(since.length > 0 && since.every((r) => ns(r.time) >= ns(mid.time)));
  const until = await all(readLocalLog(lp, { until: ns(mid.time), maxFile: 3 }));
  assert.ok(until.length > 0 && until.every((r) => ns(r.time) <= ns(mid.time)));
});

test('local follow: across rotation until the container stops', T, async () => {
  const id = sb.newId();
  const lp = path.join(sb.stateDir(id), 'local-logs', 'container.log');
  fs.mkdirSync(path.dirname(lp), { recursive: true });
  const c = await sb.spawn(
    id,
    {
      args: [
        'sh',
        '-c',
        'i=0; while [ $i -lt 400 ]; do echo "n-$i"; i=$((i+1)); [ $((i % 20)) = 0 ] && sleep 0.1; done',
      ],
    },
    { log: { driver: 'local', path: lp, maxSize: 2_000, maxFile: 2, compress: false } },
  );
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => {
    resolveStopped = r;
  });
  const reading = all(readLocalLog(lp, { follow: true, stopped, pollMs: 20 }));
  await c.start();
  await c.wait();
  resolveStopped();
  const got = (await reading).map((r) => r.line.toString());
  await c.delete();
  assert.deepEqual(
    got,
    Array.from({ length: 400 }, (_, i) => `n-${i}\n`),
  );
});
