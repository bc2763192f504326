import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, test } from 'node:test';
import {
  acceptKey,
  CloseCode,
  closePayload,
  encodeFrame,
  FrameParser,
  handshake,
  Opcode,
  WebSocketStream,
  type WsEvent,
} from './websocket.js';

/** A client frame: masked unless told otherwise; `len` overrides the encoded length. */
function clientFrame(
  op: number,
  payload: Buffer | string,
  o: { fin?: boolean; mask?: boolean; rsv?: number; len?: bigint } = {},
): Buffer {
  const pl = Buffer.from(payload);
  const n = o.len ?? BigInt(pl.length);
  const mask = o.mask ?? true;
  const ext = n < 126n ? 0 : n < 0x10000n ? 2 : 8;
  const h = Buffer.alloc(2 + ext + (mask ? 4 : 0));
  h[0] = ((o.fin ?? true) ? 0x80 : 0) | (o.rsv ?? 0) | op;
  h[1] = (mask ? 0x80 : 0) | (ext === 0 ? Number(n) : ext === 2 ? 126 : 127);
  if (ext === 2) h.writeUInt16BE(Number(n), 2);
  if (ext === 8) h.writeBigUInt64BE(n, 2);
  if (!mask) return Buffer.concat([h, pl]);
  const m = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  m.copy(h, 2 + ext);
  const body = Buffer.from(pl.map((b, i) => b ^ m[i & 3]!));
  return Buffer.concat([h, body]);
}

const parse = (bytes: Buffer, opts?: { maxMessage?: number }): WsEvent[] => new FrameParser(opts).push(bytes);
const errorCode = (evs: WsEvent[]) => {
  const last = evs.at(-1);
  return last?.type === 'error' ? last.code : undefined;
};

describe('websocket handshake', () => {
  test('Sec-WebSocket-Accept of the RFC 6455 example key', () => {
    assert.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  const good = {
    upgrade: 'websocket',
    connection: 'keep-alive, Upgrade',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'sec-websocket-version': '13',
  };

  test('a valid handshake gives the 101 headers; one subprotocol is echoed', () => {
    assert.deepEqual(handshake(good), [
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
    ]);
    assert.ok(handshake({ ...good, 'sec-websocket-protocol': 'chat' }).includes('Sec-WebSocket-Protocol: chat'));
  });

  test('bad handshakes are invalid arguments (400)', () => {
    for (const h of [
      { ...good, upgrade: 'tcp' },
      { ...good, connection: 'close' },
      { ...good, 'sec-websocket-version': '8' },
      { ...good, 'sec-websocket-key': '' },
      { ...good, 'sec-websocket-protocol': 'a, b' },
    ]) {
      assert.throws(
        () => handshake(h),
        (e: Error & { kind?: string }) => e.kind === 'invalid-argument',
      );
    }
  });
});

describe('websocket frames', () => {
  test('server frames: 7-bit, 16-bit and 64-bit lengths, unmasked', () => {
    assert.deepEqual([...encodeFrame(Opcode.Binary, Buffer.from('ab'))], [0x82, 2, 0x61, 0x62]);
    const f126 = encodeFrame(Opcode.Text, Buffer.alloc(126));
    assert.deepEqual([...f126.subarray(0, 4)], [0x81, 126, 0, 126]);
    assert.equal(f126.length, 4 + 126);
    const f64k = encodeFrame(Opcode.Binary, Buffer.alloc(0x10000));
    assert.deepEqual([...f64k.subarray(0, 10)], [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert.deepEqual([...encodeFrame(Opcode.Close, closePayload(1000))], [0x88, 2, 0x03, 0xe8]);
  });

  test('the RFC 6455 masked "Hello", whole and one byte at a time', () => {
    const bytes = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    assert.deepEqual(parse(bytes), [{ type: 'message', binary: false, data: Buffer.from('Hello') }]);
    const p = new FrameParser();
    const evs: WsEvent[] = [];
    for (const b of bytes) evs.push(...p.push(Buffer.from([b])));
    assert.deepEqual(evs, [{ type: 'message', binary: false, data: Buffer.from('Hello') }]);
  });

  test('large frames (16-bit and 64-bit lengths) in many chunks', () => {
    for (const n of [200, 70_000]) {
      const data = randomBytes(n);
      const f = clientFrame(Opcode.Binary, data);
      const p = new FrameParser();
      const evs: WsEvent[] = [];
      for (let i = 0; i < f.length; i += 1000) evs.push(...p.push(f.subarray(i, i + 1000)));
      assert.deepEqual(evs, [{ type: 'message', binary: true, data }]);
    }
  });

  test('fragmented message with a ping in the middle; pong; empty frames', () => {
    const evs = parse(
      Buffer.concat([
        clientFrame(Opcode.Text, 'Hel', { fin: false }),
        clientFrame(Opcode.Ping, 'p'),
        clientFrame(Opcode.Continuation, '', { fin: false }),
        clientFrame(Opcode.Continuation, 'lo'),
        clientFrame(Opcode.Pong, 'q'),
        clientFrame(Opcode.Binary, ''),
      ]),
    );
    assert.deepEqual(evs, [
      { type: 'ping', data: Buffer.from('p') },
      { type: 'message', binary: false, data: Buffer.from('Hello') },
      { type: 'pong', data: Buffer.from('q') },
      { type: 'message', binary: true, data: Buffer.alloc(0) },
    ]);
  });

  test('close frames: with code and reason, empty; nothing is read after a close', () => {
    assert.deepEqual(parse(clientFrame(Opcode.Close, closePayload(1001, 'bye'))), [
      { type: 'close', code: 1001, reason: 'bye' },
    ]);
    assert.deepEqual(parse(Buffer.concat([clientFrame(Opcode.Close, ''), clientFrame(Opcode.Text, 'x')])), [
      { type: 'close', reason: '' },
    ]);
  });

  const BAD: Array<[string, Buffer, number]> = [
    ['unmasked client frame', clientFrame(Opcode.Binary, 'x', { mask: false }), CloseCode.ProtocolError],
    ['reserved bit', clientFrame(Opcode.Binary, 'x', { rsv: 0x40 }), CloseCode.ProtocolError],
    ['opcode 3', clientFrame(3, 'x'), CloseCode.ProtocolError],
    ['opcode 5', clientFrame(5, 'x'), CloseCode.ProtocolError],
    ['opcode 0xB', clientFrame(0xb, 'x'), CloseCode.ProtocolError],
    ['fragmented ping', clientFrame(Opcode.Ping, 'x', { fin: false }), CloseCode.ProtocolError],
    ['control frame over 125 bytes', clientFrame(Opcode.Ping, Buffer.alloc(126)), CloseCode.ProtocolError],
    ['continuation first', clientFrame(Opcode.Continuation, 'x'), CloseCode.ProtocolError],
    [
      'new message inside a fragmented one',
      Buffer.concat([clientFrame(Opcode.Text, 'a', { fin: false }), clientFrame(Opcode.Text, 'b')]),
      CloseCode.ProtocolError,
    ],
    ['64-bit length with the top bit', clientFrame(Opcode.Binary, '', { len: 1n << 63n }), CloseCode.ProtocolError],
    ['1-byte close payload', clientFrame(Opcode.Close, Buffer.from([3])), CloseCode.ProtocolError],
    ['close code 1005', clientFrame(Opcode.Close, closePayload(1005)), CloseCode.ProtocolError],
    ['close code 999', clientFrame(Opcode.Close, closePayload(999)), CloseCode.ProtocolError],
    ['invalid UTF-8 text', clientFrame(Opcode.Text, Buffer.from([0xc3, 0x28])), CloseCode.InvalidPayload],
    [
      'invalid UTF-8 close reason',
      clientFrame(Opcode.Close, Buffer.from([0x03, 0xe8, 0xff])),
      CloseCode.InvalidPayload,
    ],
  ];
  for (const [name, bytes, code] of BAD) {
    test(`bad frame: ${name} → close ${code}`, () => {
      const p = new FrameParser();
      const evs = p.push(bytes);
      assert.equal(errorCode(evs), code, JSON.stringify(evs));
      assert.deepEqual(p.push(clientFrame(Opcode.Text, 'after')), [], 'the parser is dead after an error');
    });
  }

  test('oversized: a huge declared length fails at once, before any payload is buffered', () => {
    assert.equal(errorCode(parse(clientFrame(Opcode.Binary, '', { len: 1n << 40n }))), CloseCode.TooBig);
    assert.equal(errorCode(parse(clientFrame(Opcode.Binary, Buffer.alloc(11)), { maxMessage: 10 })), CloseCode.TooBig);
    // the limit is on the whole message, across fragments
    const frags = Buffer.concat([
      clientFrame(Opcode.Binary, Buffer.alloc(6), { fin: false }),
      clientFrame(Opcode.Continuation, Buffer.alloc(6)),
    ]);
    assert.equal(errorCode(parse(frags, { maxMessage: 10 })), CloseCode.TooBig);
    assert.equal(parse(clientFrame(Opcode.Binary, Buffer.alloc(10)), { maxMessage: 10 }).length, 1);
  });

  test('random garbage never throws', () => {
    for (let i = 0; i < 2000; i++) {
      const p = new FrameParser({ maxMessage: 1 << 16 });
      for (let j = 0; j < 4; j++) p.push(randomBytes(1 + (i % 97)));
    }
  });
});

/** A WebSocketStream on the server end of a loopback connection, and the raw client socket. */
async function pair(binary = true): Promise<{ ws: WebSocketStream; client: net.Socket; received: () => Buffer }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  const sock = await accepted;
  server.close();
  let got = Buffer.alloc(0);
  client.on('data', (d: Buffer) => {
    got = Buffer.concat([got, d]);
  });
  return { ws: new WebSocketStream(sock, { binary }), client, received: () => got };
}

/** Server frames in `b` as [opcode, payload]. */
function serverFrames(b: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  let p = 0;
  while (p + 2 <= b.length) {
    let len = b[p + 1]! & 0x7f;
    let h = 2;
    if (len === 126) {
      len = b.readUInt16BE(p + 2);
      h = 4;
    } else if (len === 127) {
      len = Number(b.readBigUInt64BE(p + 2));
      h = 10;
    }
    out.push([b[p]! & 0x0f, b.subarray(p + h, p + h + len)]);
    p += h + len;
  }
  return out;
}

const closed = (s: net.Socket) =>
  new Promise<void>((r, j) => {
    if (s.destroyed) return r();
    const t = setTimeout(() => j(new Error('socket not closed within 5 s')), 5000);
    s.once('close', () => {
      clearTimeout(t);
      r();
    });
  });

describe('WebSocketStream', () => {
  test('writes are data frames; client messages are read; ping → pong; end() → close 1000', async () => {
    const { ws, client, received } = await pair();
    const chunks: Buffer[] = [];
    ws.on('data', (d: Buffer) => chunks.push(d));
    ws.write(Buffer.from('out1'));
    client.write(Buffer.concat([clientFrame(Opcode.Text, 'in1'), clientFrame(Opcode.Ping, 'pp')]));
    client.write(clientFrame(Opcode.Binary, 'in2'));
    await new Promise((r) => setTimeout(r, 100));
    ws.end(Buffer.from('out2'));
    // the client answers the close, as RFC 6455 asks
    await new Promise((r) => setTimeout(r, 100));
    client.end(clientFrame(Opcode.Close, closePayload(1000)));
    await closed(client);
    assert.deepEqual(Buffer.concat(chunks).toString(), 'in1in2');
    assert.deepEqual(serverFrames(received()), [
      [Opcode.Binary, Buffer.from('out1')],
      [Opcode.Pong, Buffer.from('pp')],
      [Opcode.Binary, Buffer.from('out2')],
      [Opcode.Close, closePayload(1000)],
    ]);
  });

  test('text frames when not binary', async () => {
    const { ws, client, received } = await pair(false);
    ws.end('x');
    client.end();
    await closed(client);
    assert.deepEqual(serverFrames(received()), [
      [Opcode.Text, Buffer.from('x')],
      [Opcode.Close, closePayload(1000)],
    ]);
  });

  test("a client's close ends the readable side and is echoed; the stream closes", async () => {
    const { ws, client, received } = await pair();
    const ended = new Promise<void>((r) => ws.once('end', r));
    const wsClosed = new Promise<void>((r) => ws.once('close', r));
    ws.resume();
    client.write(clientFrame(Opcode.Close, closePayload(1001, 'going')));
    await ended;
    await closed(client);
    await wsClosed;
    assert.deepEqual(serverFrames(received()), [[Opcode.Close, closePayload(1001)]]);
  });

  test('an unmasked client frame fails the connection with close 1002', async () => {
    const { ws, client, received } = await pair();
    const wsClosed = new Promise<void>((r) => ws.once('close', r));
    ws.resume();
    client.write(clientFrame(Opcode.Binary, 'x', { mask: false }));
    await closed(client);
    await wsClosed;
    const f = serverFrames(received());
    assert.equal(f.length, 1);
    assert.equal(f[0]![0], Opcode.Close);
    assert.equal(f[0]![1].readUInt16BE(0), CloseCode.ProtocolError);
  });

  test('a client that drops the TCP connection destroys the stream', async () => {
    const { ws, client } = await pair();
    const wsClosed = new Promise<void>((r) => ws.once('close', r));
    ws.resume();
    client.destroy();
    await wsClosed;
    assert.ok(ws.destroyed);
  });
});
