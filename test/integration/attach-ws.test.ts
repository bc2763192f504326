// GET /containers/{id}/attach/ws end to end, with a real WebSocket client
// (node 20's --experimental-websocket global, in a child process), against
// berthd and — where it can run — the reference dockerd 20.10, comparing the
// frames each sends for the same container. The daemons listen on unix
// sockets; the client reaches them through a loopback TCP → unix relay.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../kit/reference-dockerd.js';
import { IMPORT_CHANGES, makeTestRootfsTar } from './cli-containers-kit.js';
import { Berthd, CLI20, CLI28, cliUnavailable, type RunResult, run } from './cli-kit.js';

const skip = cliUnavailable();
if (skip) console.log(`# skipping attach-ws: ${skip}`);
const refSkip = skip ?? referenceDockerdUnavailable();
if (!skip && refSkip) console.log(`# attach-ws: no differential checks: ${refSkip}`);

const IMG = 'bbox:1';

/** 127.0.0.1:<port> relayed to a unix socket. */
async function relay(socketPath: string): Promise<{ port: number; close: () => void }> {
  const conns = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const u = net.connect(socketPath);
    conns.add(c).add(u);
    c.pipe(u).pipe(c);
    const drop = () => {
      c.destroy();
      u.destroy();
    };
    c.on('error', drop).on('close', drop);
    u.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      server.close();
      for (const c of conns) c.destroy();
    },
  };
}

type WsEvent =
  | { t: 'message'; binary: boolean; data: string }
  | { t: 'close'; code: number; clean: boolean }
  | { t: 'error' }
  | { t: 'timeout' };

// The client: prints OPEN on open, sends each stdin line it is given as a
// text frame (each arrives as one JSON string line), and prints its events as JSON when the socket closes.
const CLIENT = `
const ws = new WebSocket(process.argv[1]);
ws.binaryType = 'arraybuffer';
const ev = [];
let done = false;
const out = () => { if (done) return; done = true; process.stdout.write(JSON.stringify(ev) + '\\n'); process.exit(0); };
ws.onopen = () => process.stdout.write('OPEN\\n');
ws.onmessage = (e) => ev.push({ t: 'message', binary: typeof e.data !== 'string',
  data: typeof e.data === 'string' ? e.data : Buffer.from(new Uint8Array(e.data)).toString('latin1') });
ws.onerror = () => ev.push({ t: 'error' });
ws.onclose = (e) => { ev.push({ t: 'close', code: e.code, clean: e.wasClean }); out(); };
let pend = '';
process.stdin.on('data', (d) => {
  pend += d;
  for (let i; (i = pend.indexOf('\\n')) >= 0; pend = pend.slice(i + 1)) ws.send(JSON.parse(pend.slice(0, i)));
});
setTimeout(() => { ev.push({ t: 'timeout' }); out(); }, Number(process.argv[2]));
`;

/**
 * Opens ws://127.0.0.1:<port><urlPath>, runs onOpen once connected (e.g. to
 * start the container), then sends `lines`; resolves with the events.
 */
function wsSession(
  port: number,
  urlPath: string,
  o: { onOpen?: () => Promise<unknown>; lines?: string[]; timeoutMs?: number } = {},
): Promise<WsEvent[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--no-warnings',
        '--experimental-websocket',
        '-e',
        CLIENT,
        `ws://127.0.0.1:${port}${urlPath}`,
        String(o.timeoutMs ?? 15_000),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const kill = setTimeout(() => child.kill('SIGKILL'), (o.timeoutMs ?? 15_000) + 10_000);
    let out = '';
    let err = '';
    let opened = false;
    child.stdout.on('data', async (d: Buffer) => {
      out += d.toString();
      if (!opened && out.startsWith('OPEN\n')) {
        opened = true;
        try {
          await o.onOpen?.();
          // stdin after the container has started (the attach is in place from the open)
          await new Promise((r) => setTimeout(r, 300));
          for (const l of o.lines ?? []) child.stdin.write(`${JSON.stringify(l)}\n`);
        } catch (e) {
          reject(e);
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.stdin.on('error', () => {});
    child.on('close', () => {
      clearTimeout(kill);
      const json = out.replace(/^OPEN\n/, '').trim();
      if (!json) return reject(new Error(`websocket client printed nothing: ${err}`));
      resolve(JSON.parse(json) as WsEvent[]);
    });
  });
}

/** The status line and body of a raw GET with websocket upgrade headers. */
function rawGet(socketPath: string, urlPath: string, upgrade = true): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let got = '';
    const t = setTimeout(() => s.destroy(), 10_000);
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      // a keep-alive error response: done once its Content-Length is in
      const h = got.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length: *(\d+)/i.exec(got.slice(0, h))?.[1];
      if (h >= 0 && len !== undefined && got.length >= h + 4 + Number(len)) s.destroy();
    });
    s.on('error', reject);
    s.on('close', () => {
      clearTimeout(t);
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 0);
      resolve({ status, body: got.slice(got.indexOf('\r\n\r\n') + 4) });
    });
    const hs = upgrade
      ? 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'
      : 'Connection: close\r\n';
    s.write(`GET ${urlPath} HTTP/1.1\r\nHost: localhost\r\n${hs}\r\n`);
  });
}

interface Target {
  name: string;
  docker: (args: string[]) => Promise<RunResult>;
  port: number;
  socket: string;
}

/** The scenarios, each run the same way on a target; their events are compared across targets. */
const SCENARIOS: Array<{
  name: string;
  run: (t: Target) => Promise<WsEvent[]>;
  check: (ev: WsEvent[]) => void;
}> = [
  {
    name: 'stdin line in, output out, close 1000 when the container exits (no TTY: raw, binary frames)',
    run: async (t) => {
      const id = await create(t, ['-i'], ['sh', '-c', 'read l; echo got:$l']);
      return wsSession(t.port, `/v1.41/containers/${id}/attach/ws?stdin=1&stdout=1&stream=1`, {
        onOpen: () => mustRun(t, ['start', id]),
        lines: ['hello\n'],
      });
    },
    check: (ev) => {
      assert.equal(text(ev), 'got:hello\n');
      assert.ok(messages(ev).every((m) => m.binary));
      assert.deepEqual(ev.at(-1), { t: 'close', code: 1000, clean: true });
    },
  },
  {
    name: 'API 1.41: stdout=1 alone still carries stderr (1.42 honours the stream parameters)',
    run: async (t) => {
      const id = await create(t, [], ['sh', '-c', 'echo out; sleep 0.2; echo err >&2']);
      return wsSession(t.port, `/v1.41/containers/${id}/attach/ws?stdout=1&stream=1`, {
        onOpen: () => mustRun(t, ['start', id]),
      });
    },
    check: (ev) => {
      assert.equal(text(ev), 'out\nerr\n');
      assert.deepEqual(ev.at(-1), { t: 'close', code: 1000, clean: true });
    },
  },
  {
    name: 'API 1.27: text frames',
    run: async (t) => {
      const id = await create(t, [], ['sh', '-c', 'echo old-api']);
      return wsSession(t.port, `/v1.27/containers/${id}/attach/ws?stdout=1&stream=1`, {
        onOpen: () => mustRun(t, ['start', id]),
      });
    },
    check: (ev) => {
      assert.equal(text(ev), 'old-api\n');
      assert.ok(messages(ev).every((m) => !m.binary));
      assert.deepEqual(ev.at(-1), { t: 'close', code: 1000, clean: true });
    },
  },
  {
    name: 'TTY: echo, output, close',
    run: async (t) => {
      const id = await create(t, ['-it'], ['sh', '-c', 'read l; echo got:$l']);
      return wsSession(t.port, `/v1.41/containers/${id}/attach/ws?stdin=1&stdout=1&stream=1`, {
        onOpen: () => mustRun(t, ['start', id]),
        lines: ['tty\r'],
      });
    },
    check: (ev) => {
      assert.equal(text(ev), 'tty\r\ngot:tty\r\n');
      assert.deepEqual(ev.at(-1), { t: 'close', code: 1000, clean: true });
    },
  },
  {
    name: 'TTY: the detach keys (ctrl-p ctrl-q) end the attach with close 1000; the container keeps running',
    run: async (t) => {
      const id = await create(t, ['-it'], ['cat']);
      await mustRun(t, ['start', id]);
      const ev = await wsSession(t.port, `/v1.41/containers/${id}/attach/ws?stdin=1&stdout=1&stream=1`, {
        lines: ['\x10\x11'],
      });
      const running = (await mustRun(t, ['inspect', '-f', '{{.State.Running}}', id])).stdout.trim();
      await mustRun(t, ['rm', '-f', id]);
      return [...ev, { t: 'message', binary: true, data: `[running=${running}]` }];
    },
    check: (ev) => {
      assert.equal(text(ev), '[running=true]');
      assert.deepEqual(ev.at(-2), { t: 'close', code: 1000, clean: true });
    },
  },
  {
    name: 'logs=1 without stream on an exited container: the replay, then close',
    run: async (t) => {
      const id = await create(t, [], ['sh', '-c', 'echo one; echo two']);
      await mustRun(t, ['start', '-a', id]);
      return wsSession(t.port, `/containers/${id}/attach/ws?logs=1&stdout=1`);
    },
    check: (ev) => {
      assert.equal(text(ev), 'one\ntwo\n');
      assert.deepEqual(ev.at(-1), { t: 'close', code: 1000, clean: true });
    },
  },
];

async function mustRun(t: Target, args: string[]): Promise<RunResult> {
  const r = await t.docker(args);
  assert.equal(r.code, 0, `${t.name}: docker ${args.join(' ')}: ${r.stderr}`);
  return r;
}
async function create(t: Target, flags: string[], cmd: string[]): Promise<string> {
  return (await mustRun(t, ['create', '--network', 'none', ...flags, IMG, ...cmd])).stdout.trim();
}
const messages = (ev: WsEvent[]) => ev.filter((e): e is Extract<WsEvent, { t: 'message' }> => e.t === 'message');
const text = (ev: WsEvent[]) =>
  messages(ev)
    .map((m) => m.data)
    .join('');

describe('attach over a websocket', { skip, timeout: 240_000 }, () => {
  let work: string;
  let b: Berthd;
  let ref: ReferenceDockerd | undefined;
  const targets: Target[] = [];
  const relays: Array<{ close: () => void }> = [];

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'attach-ws-'));
    const tar = await makeTestRootfsTar(work);
    [b, ref] = await Promise.all([Berthd.start(), refSkip ? undefined : ReferenceDockerd.start()]);
    const rb = await relay(b.socket);
    relays.push(rb);
    targets.push({
      name: 'berthd',
      docker: (a) => b.docker(CLI28, a, { timeoutMs: 60_000 }),
      port: rb.port,
      socket: b.socket,
    });
    if (ref) {
      const r = ref;
      const rr = await relay(r.socket);
      relays.push(rr);
      targets.push({
        name: 'dockerd 20.10',
        docker: (a) =>
          run(CLI20, ['-H', r.host, ...a], { env: { DOCKER_CONFIG: path.join(work, 'ref-cli') }, timeoutMs: 60_000 }),
        port: rr.port,
        socket: r.socket,
      });
    }
    for (const t of targets) await mustRun(t, ['import', ...IMPORT_CHANGES, tar, IMG]);
  });

  after(async () => {
    for (const r of relays) r.close();
    await Promise.allSettled([b?.destroy(), ref?.destroy()]);
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  for (const s of SCENARIOS) {
    test(s.name, async () => {
      const got: Array<[string, WsEvent[]]> = [];
      for (const t of targets) got.push([t.name, await s.run(t)]);
      for (const [name, ev] of got) {
        try {
          s.check(ev);
        } catch (e) {
          throw new Error(`${name}: ${(e as Error).message}\nevents: ${JSON.stringify(ev)}`);
        }
      }
      // differential: the same frames (type, bytes) and close, where the
      // message boundaries are not a race (one write per frame on both sides)
      if (got.length === 2) {
        const shape = (ev: WsEvent[]) => ({
          text: text(ev),
          frameTypes: [...new Set(messages(ev).map((m) => (m.binary ? 'binary' : 'text')))],
          end: ev.filter((e) => e.t !== 'message').at(-1),
        });
        assert.deepEqual(shape(got[0]![1]), shape(got[1]![1]), 'berthd vs dockerd 20.10');
      }
    });
  }

  test('an unknown container: 404 with the JSON message, no upgrade', async () => {
    assert.equal(targets.length, refSkip ? 1 : 2, 'the differential target is there when it can run');
    for (const t of targets) {
      const r = await rawGet(t.socket, '/v1.41/containers/nosuch/attach/ws?stream=1');
      assert.equal(r.status, 404, `${t.name}: ${r.body}`);
      assert.match(r.body, /"message":"No such container: nosuch"/, t.name);
    }
  });

  test('berthd: a GET without the websocket handshake is a 400, not a hang', async () => {
    const id = await create(targets[0]!, [], ['true']);
    const r = await rawGet(b.socket, `/v1.41/containers/${id}/attach/ws?stream=1`, false);
    assert.equal(r.status, 400, r.body);
  });
});
