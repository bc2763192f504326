// Real containers (busybox rootfs, runc) through berth-shim.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { ShimClient } from './shim-client.js';
import { collect, ended, rssKb, Sandbox, until } from './testkit.js';

const sb = new Sandbox();
after(() => sb.cleanup());

const ENTRY_RE =
  /^\{"log":"(?:[^"\\]|\\.)*","stream":"(stdout|stderr)","time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"\}$/;

function logLines(id: string): string[] {
  return fs.readFileSync(sb.logPath(id), 'utf8').split('\n').filter(Boolean);
}

test('stdout/stderr go to the json-file log in Docker format; exit code recorded', { timeout: 30_000 }, async () => {
  const id = sb.newId();
  const c = await sb.spawn(id, {
    args: [
      'sh',
      '-c',
      'echo hello; echo "<err> & \\"q\\"" >&2; printf "tab\\there\\r\\n"; printf "\\377bad\\n"; printf "no newline"; exit 7',
    ],
  });
  assert.equal((await c.state()).status, 'created');
  await c.start();
  const ex = await c.wait();
  assert.equal(ex.exitCode, 7);
  assert.equal(ex.oomKilled, false);
  assert.match(ex.finishedAt, /Z$/);
  const lines = logLines(id);
  for (const l of lines) assert.match(l, ENTRY_RE);
  const objs = lines.map((l) => JSON.parse(l) as { log: string; stream: string; time: string });
  const out = objs.filter((o) => o.stream === 'stdout').map((o) => o.log);
  const err = objs.filter((o) => o.stream === 'stderr').map((o) => o.log);
  assert.deepEqual(out, ['hello\n', 'tab\there\r\n', '\ufffdbad\n', 'no newline']);
  assert.deepEqual(err, ['<err> & "q"\n']);
  // moby's escaping: < > & as \u003c \u003e \u0026, tab as \u0009, invalid UTF-8 as \ufffd
  const raw = fs.readFileSync(sb.logPath(id), 'utf8');
  assert.ok(raw.includes('"log":"\\u003cerr\\u003e \\u0026 \\"q\\"\\n"'), raw);
  assert.ok(raw.includes('"log":"tab\\u0009here\\r\\n"'), raw);
  assert.ok(raw.includes('"log":"\\ufffdbad\\n"'), raw);
  // the final fragment without a newline is a partial message: no "\n"
  assert.ok(raw.includes('"log":"no newline","stream":"stdout"'), raw);
  const st = JSON.parse(fs.readFileSync(path.join(sb.stateDir(id), 'state.json'), 'utf8'));
  assert.equal(st.status, 'stopped');
  assert.equal(st.exitCode, 7);
  await c.delete();
  assert.equal(await sb.runtime.state(id), null);
});

test('lines longer than 16 KiB are split into partial messages like dockerd', { timeout: 30_000 }, async () => {
  const id = sb.newId();
  const c = await sb.spawn(id, { args: ['sh', '-c', 'head -c 40000 /dev/zero | tr "\\0" a; echo'] });
  await c.start();
  await c.wait();
  const objs = logLines(id).map((l) => JSON.parse(l) as { log: string });
  assert.deepEqual(
    objs.map((o) => o.log.length),
    [16384, 16384, 40000 - 32768 + 1],
  );
  assert.ok(objs[2]!.log.endsWith('a\n'));
  await c.delete();
});

test('kill with signals: TERM runs the trap, KILL gives 137', { timeout: 30_000 }, async () => {
  const id = sb.newId();
  const c = await sb.spawn(id, {
    args: ['sh', '-c', 'trap "echo got-term; exit 42" TERM; echo ready; while true; do sleep 0.05; done'],
  });
  await c.start();
  await until(() => fs.readFileSync(sb.logPath(id), 'utf8').includes('ready'));
  const w = c.wait();
  await c.kill('SIGTERM');
  assert.equal((await w).exitCode, 42);
  assert.ok(fs.readFileSync(sb.logPath(id), 'utf8').includes('got-term'));
  await c.delete();

  const id2 = sb.newId();
  const c2 = await sb.spawn(id2, { args: ['sleep', '1000'] });
  await c2.start();
  assert.equal((await c2.state()).status, 'running');
  await c2.kill(9);
  const ex = await c2.wait();
  assert.equal(ex.exitCode, 137);
  assert.equal(ex.signal, 9);
  await assert.rejects(c2.kill('TERM'), /not running/);
  await c2.delete();
});

test('attach: stdout/stderr fan-out and stdin; closing stdin (StdinOnce) gives the process EOF', {
  timeout: 30_000,
}, async () => {
  const id = sb.newId();
  const c = await sb.spawn(
    id,
    { args: ['sh', '-c', 'while read l; do echo "out:$l"; echo "err:$l" >&2; done; echo eof-seen; exit 5'] },
    { openStdin: true, stdinOnce: true },
  );
  const a = await c.attach({ stdin: true, stdout: true, stderr: true });
  const out = collect(a.stdout);
  const err = collect(a.stderr);
  await c.start();
  a.stdin!.write('one\n');
  await out.waitFor(/out:one\n/);
  await err.waitFor(/err:one\n/);
  a.stdin!.write('two\n');
  await out.waitFor(/out:two\n/);
  a.stdin!.end(); // end of stdin from the only client: StdinOnce closes the container's stdin
  await out.waitFor(/eof-seen/);
  assert.equal((await c.wait()).exitCode, 5);
  await ended(a.stdout);
  assert.equal(out.text(), 'out:one\nout:two\neof-seen\n');
  await c.delete();
});

test('run mode: running at spawn, output held until start so an attach in between sees all of it', {
  timeout: 30_000,
}, async () => {
  const id = sb.newId();
  // prints at once: without the hold the output would be gone before the attach
  const c = await sb.spawn(
    id,
    {
      args: [
        'sh',
        '-c',
        'echo first; echo to-err >&2; i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done; exit 3',
      ],
    },
    { run: true },
  );
  const st = await c.state();
  assert.equal(st.status, 'running');
  assert.ok(st.pid > 0 && st.startedAt !== '');
  await new Promise((r) => setTimeout(r, 300)); // the process has long exited meanwhile
  const a = await c.attach({ stdout: true, stderr: true });
  const out = collect(a.stdout);
  const err = collect(a.stderr);
  await c.start(); // releases the output
  assert.equal((await c.wait()).exitCode, 3);
  await ended(a.stdout);
  const lines = out.text().split('\n');
  assert.equal(lines[0], 'first');
  assert.equal(lines[300], 'line299');
  assert.equal(err.text(), 'to-err\n');
  assert.equal(logLines(id).length, 302);
  await assert.rejects(c.start(), /not in the created state/);
  await c.delete();
});

test('run mode: without a start from berthd the shim releases the output after 10 s', { timeout: 40_000 }, async () => {
  const id = sb.newId();
  const c = await sb.spawn(id, { args: ['sh', '-c', 'echo released'] }, { run: true });
  // berthd "died" before its start: nobody sends one
  assert.equal((await c.wait()).exitCode, 0);
  assert.deepEqual(
    logLines(id).map((l) => (JSON.parse(l) as { log: string }).log),
    ['released\n'],
  );
  assert.match(fs.readFileSync(path.join(sb.stateDir(id), 'shim.log'), 'utf8'), /no start from berthd within 10000 ms/);
  await c.delete();
});

test('run mode: a failing runtime run is reported like a failing create', { timeout: 30_000 }, async () => {
  const id = sb.newId();
  await assert.rejects(
    sb.spawn(id, { args: ['/no/such/binary'] }, { run: true }),
    /no\/such\/binary|executable file not found|no such file/i,
  );
});

test('closeStdin without StdinOnce; raw frames carry stdcopy headers', { timeout: 30_000 }, async () => {
  const id = sb.newId();
  const c = await sb.spawn(id, { args: ['sh', '-c', 'cat; echo done >&2'] }, { openStdin: true });
  const a = await c.attach({ stdin: true, stdout: true, stderr: true, raw: true });
  const chunks: Buffer[] = [];
  a.frames.on('data', (d: Buffer) => chunks.push(d));
  await c.start();
  a.stdin!.write('abc\n');
  a.stdin!.end(); // not StdinOnce: the container's stdin stays open
  await until(() => Buffer.concat(chunks).includes('abc'));
  assert.equal((await c.state()).status, 'running');
  await c.closeStdin();
  await c.wait();
  await ended(a.frames);
  const all = Buffer.concat(chunks);
  const frames: [number, string][] = [];
  for (let p = 0; p < all.length; ) {
    const len = all.readUInt32BE(p + 4);
    frames.push([all[p]!, all.subarray(p + 8, p + 8 + len).toString()]);
    p += 8 + len;
  }
  assert.deepEqual(frames, [
    [1, 'abc\n'],
    [2, 'done\n'],
  ]);
  await c.delete();
});

test('TTY: sh on a pty, stdin via attach, resize changes stty size', { timeout: 30_000 }, async () => {
  const id = sb.newId();
  const c = await sb.spawn(id, { args: ['sh'], tty: true }, { openStdin: true });
  const a = await c.attach({ stdin: true, stdout: true });
  const out = collect(a.stdout);
  await c.start();
  await c.resize(31, 101);
  a.stdin!.write('stty size; echo mark-$((6*7))\n');
  await out.waitFor(/31 101\r?\n/);
  await out.waitFor(/mark-42/);
  await c.resize(40, 120);
  a.stdin!.write('stty size\n');
  await out.waitFor(/40 120\r?\n/);
  a.stdin!.write('exit 3\n');
  assert.equal((await c.wait()).exitCode, 3);
  // a TTY's output is one stream: stdout, with the terminal's \r\n
  const log = fs.readFileSync(sb.logPath(id), 'utf8');
  assert.ok(log.includes('"log":"31 101\\r\\n","stream":"stdout"'), log);
  assert.ok(!log.includes('"stream":"stderr"'));
  await c.delete();
});

test('berthd restart: a new client reconnects to the running shim, logs continued meanwhile', {
  timeout: 30_000,
}, async () => {
  const id = sb.newId();
  let c: ShimClient | null = await sb.spawn(id, {
    args: ['sh', '-c', 'i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.05; done'],
  });
  await c.start();
  const pid = (await c.state()).pid;
  c.close(); // berthd goes away
  c = null;
  const before = fs.readFileSync(sb.logPath(id), 'utf8').split('\n').length;
  await new Promise((r) => setTimeout(r, 400));
  const during = fs.readFileSync(sb.logPath(id), 'utf8').split('\n').length;
  assert.ok(during > before + 3, `log kept growing without a client (${before} -> ${during})`);
  const r = await ShimClient.reconnect(id, sb.stateDir(id));
  assert.ok(r.client);
  const c2 = sb.track(r.client);
  const st = await c2.state();
  assert.equal(st.status, 'running');
  assert.equal(st.pid, pid);
  const a = await c2.attach({ stdout: true });
  const out = collect(a.stdout);
  await out.waitFor(/tick-\d+\n.*tick-\d+\n/s);
  const w = c2.wait();
  await c2.kill('KILL');
  assert.equal((await w).exitCode, 137);
  await c2.delete();
});

test('berthd killed with SIGKILL: the shim and container survive, a new process reattaches', {
  timeout: 30_000,
}, async () => {
  const id = sb.newId();
  const b = sb.bundle(id, { args: ['sh', '-c', 'i=0; while true; do echo k-$i; i=$((i+1)); sleep 0.05; done'] });
  const mod = new URL('./shim-client.js', import.meta.url).href;
  const rtmod = new URL('./oci-runtime.js', import.meta.url).href;
  const script = `
    const { ShimClient } = await import(${JSON.stringify(mod)});
    const { OciRuntime } = await import(${JSON.stringify(rtmod)});
    const runtime = new OciRuntime({ name: 'runc', path: ${JSON.stringify(sb.runtime.path)}, root: ${JSON.stringify(sb.runtime.root)} });
    const c = await ShimClient.spawn({ id: ${JSON.stringify(id)}, bundle: ${JSON.stringify(b)}, stateDir: ${JSON.stringify(sb.stateDir(id))}, runtime,
      log: { driver: 'json-file', path: ${JSON.stringify(sb.logPath(id))}, maxSize: -1, maxFile: 1 } });
    await c.start();
    process.stdout.write('started\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('started') && resolve());
      child.on('exit', (code) => reject(new Error(`berthd stand-in exited ${code}`)));
    });
  } finally {
    child.kill('SIGKILL');
  }
  await new Promise((r) => child.once('exit', r));
  const size1 = fs.statSync(sb.logPath(id)).size;
  await until(() => fs.statSync(sb.logPath(id)).size > size1 + 40, 3000);
  const r = await ShimClient.reconnect(id, sb.stateDir(id));
  assert.ok(r.client);
  const c = sb.track(r.client);
  assert.equal((await c.state()).status, 'running');
  const a = await c.attach({ stdout: true });
  const out = collect(a.stdout);
  await out.waitFor(/k-\d+\n/);
  const w = c.wait();
  await c.kill('KILL');
  assert.equal((await w).exitCode, 137);
  await c.delete();
});

test('container exits while berthd is away: the shim records the exit and leaves', { timeout: 30_000 }, async () => {
  const id = sb.newId();
  const c = await sb.spawn(id, { args: ['sh', '-c', 'sleep 0.3; exit 9'] });
  await c.start();
  const shimPid = (await c.state()).shimPid;
  c.close();
  await until(() => {
    try {
      process.kill(shimPid, 0);
      return false;
    } catch {
      return true;
    }
  }, 5000);
  const r = await ShimClient.reconnect(id, sb.stateDir(id));
  assert.equal(r.client, null);
  assert.equal(r.state?.status, 'stopped');
  assert.equal(r.state?.exitCode, 9);
  assert.equal((await sb.runtime.state(id))?.status, 'stopped');
  await sb.runtime.delete(id);
});

test('log driver none: no log file, attach still gets the output', { timeout: 30_000 }, async () => {
  const id = sb.newId();
  const c = await sb.spawn(
    id,
    { args: ['sh', '-c', 'sleep 0.2; echo visible'] },
    { log: { driver: 'none', maxSize: -1, maxFile: 1 } },
  );
  const a = await c.attach({ stdout: true, stderr: true });
  const out = collect(a.stdout);
  await c.start();
  await c.wait();
  await ended(a.stdout);
  assert.equal(out.text(), 'visible\n');
  assert.equal(fs.existsSync(sb.logPath(id)), false);
  await c.delete();
});

test('create failure is reported with the runtime message', { timeout: 30_000 }, async () => {
  const id = sb.newId();
  await assert.rejects(sb.spawn(id, { args: ['/no/such/binary'] }), /no such file|not found|executable/i);
  await sb.runtime.delete(id, { force: true });
});

test('OOM kill recorded (cgroup memory limit)', { timeout: 30_000 }, async (t) => {
  if (
    !fs.existsSync('/sys/fs/cgroup/memory/memory.oom_control') &&
    !fs.existsSync('/sys/fs/cgroup/cgroup.controllers')
  ) {
    t.skip('no cgroup memory controller');
    return;
  }
  const id = sb.newId();
  // tail keeps a line-less /dev/zero in memory until the 24 MiB limit kills it
  const c = await sb.spawn(id, { args: ['sh', '-c', 'tail /dev/zero; echo survived'], memory: 24 << 20 });
  await c.start();
  const ex = await c.wait();
  assert.equal(ex.oomKilled, true);
  await c.delete();
});

test('shim resident memory stays under 2 MB', { timeout: 30_000 }, async () => {
  const ids = [sb.newId(), sb.newId(), sb.newId()];
  const clients: ShimClient[] = [];
  for (const id of ids) {
    const c = await sb.spawn(id, { args: ['sh', '-c', 'while true; do echo x; sleep 0.05; done'] });
    await c.start();
    clients.push(c);
  }
  await new Promise((r) => setTimeout(r, 300));
  const rss = [];
  for (const c of clients) rss.push(rssKb((await c.state()).shimPid));
  console.log(`berth-shim VmRSS (kB): ${rss.join(', ')}`);
  for (const r of rss) assert.ok(r > 0 && r < 2048, `shim RSS ${r} kB`);
  for (const c of clients) {
    const w = c.wait();
    await c.kill('KILL');
    await w;
    await c.delete();
  }
});
