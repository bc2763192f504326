// A small RFC 6455 server side for GET /containers/{id}/attach/ws (moby uses
// golang.org/x/net/websocket): the opening handshake, a frame parser for
// client frames (masked, fragmented, with ping/pong/close and a size limit)
// and a Duplex that carries bytes as data frames.
//
//   const ws = acceptWebSocket(req, res, { binary: true });   // writes 101
//   ws.write(buf)   // one binary (or text) frame per write
//   ws.on('data')   // the payload of each data message from the client
//   ws.end()        // close frame 1000, then the TCP connection
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';
import { invalidArgument } from '../errors/index.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const Opcode = { Continuation: 0, Text: 1, Binary: 2, Close: 8, Ping: 9, Pong: 10 } as const;

export const CloseCode = {
  Normal: 1000,
  ProtocolError: 1002,
  InvalidPayload: 1007,
  TooBig: 1009,
} as const;

/** The default limit on one client message (all its fragments). */
export const MAX_MESSAGE = 8 << 20;

export type WsEvent =
  | { type: 'message'; binary: boolean; data: Buffer }
  | { type: 'ping'; data: Buffer }
  | { type: 'pong'; data: Buffer }
  | { type: 'close'; code?: number; reason: string }
  /** A protocol violation: the connection must be failed with close `code`. */
  | { type: 'error'; code: number; reason: string };

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** One unmasked (server) frame. */
export function encodeFrame(opcode: number, payload: Buffer = Buffer.alloc(0), fin = true): Buffer {
  const n = payload.length;
  const ext = n < 126 ? 0 : n < 0x10000 ? 2 : 8;
  const h = Buffer.alloc(2 + ext);
  h[0] = (fin ? 0x80 : 0) | opcode;
  if (ext === 0) h[1] = n;
  else if (ext === 2) {
    h[1] = 126;
    h.writeUInt16BE(n, 2);
  } else {
    h[1] = 127;
    h.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([h, payload]);
}

export function closePayload(code: number, reason = ''): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function validUtf8(b: Buffer): boolean {
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
}

/** Close codes a peer may send (RFC 6455 7.4.1, 7.4.2; IANA registry up to 1014). */
function validCloseCode(c: number): boolean {
  return (c >= 1000 && c <= 1014 && c !== 1004 && c !== 1005 && c !== 1006) || (c >= 3000 && c <= 4999);
}

/**
 * Parses a client's byte stream into events. After an `error` event the
 * parser is dead (the caller fails the connection); it never throws.
 */
export class FrameParser {
  private chunks: Buffer[] = [];
  private avail = 0;
  private dead = false;
  private frag: { binary: boolean; parts: Buffer[]; size: number } | undefined;

  constructor(private readonly opts: { maxMessage?: number; requireMask?: boolean } = {}) {}

  private get max(): number {
    return this.opts.maxMessage ?? MAX_MESSAGE;
  }

  /** The first n buffered bytes without consuming them (n <= avail). */
  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const out = Buffer.from(this.peek(n));
    const first = this.chunks[0]!;
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.avail -= n;
    return out;
  }

  push(chunk: Buffer): WsEvent[] {
    if (this.dead) return [];
    if (chunk.length) {
      this.chunks.push(chunk);
      this.avail += chunk.length;
    }
    const out: WsEvent[] = [];
    const fail = (code: number, reason: string) => {
      this.dead = true;
      this.chunks = [];
      this.avail = 0;
      out.push({ type: 'error', code, reason });
      return out;
    };
    while (this.avail >= 2) {
      const h = this.peek(2);
      const fin = (h[0]! & 0x80) !== 0;
      const rsv = h[0]! & 0x70;
      const op = h[0]! & 0x0f;
      const masked = (h[1]! & 0x80) !== 0;
      const len7 = h[1]! & 0x7f;
      if (rsv) return fail(CloseCode.ProtocolError, 'reserved bits set');
      const control = op >= 8;
      if (control ? op > Opcode.Pong : op > Opcode.Binary) return fail(CloseCode.ProtocolError, `bad opcode ${op}`);
      if (control && (!fin || len7 > 125)) return fail(CloseCode.ProtocolError, 'bad control frame');
      if ((this.opts.requireMask ?? true) && !masked) return fail(CloseCode.ProtocolError, 'unmasked client frame');
      const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
      const hlen = 2 + ext + (masked ? 4 : 0);
      if (this.avail < hlen) break;
      const hdr = this.peek(hlen);
      let len: number;
      if (ext === 2) len = hdr.readUInt16BE(2);
      else if (ext === 8) {
        const big = hdr.readBigUInt64BE(2);
        if (big >> 63n) return fail(CloseCode.ProtocolError, 'bad frame length');
        len = big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(big);
      } else len = len7;
      if (!control && len + (this.frag?.size ?? 0) > this.max) return fail(CloseCode.TooBig, 'message too big');
      if (this.avail < hlen + len) break;
      this.take(hlen);
      const payload = this.take(len);
      if (masked) {
        const m = hdr.subarray(hlen - 4, hlen);
        for (let i = 0; i < payload.length; i++) payload[i]! ^= m[i & 3]!;
      }
      if (op === Opcode.Ping) out.push({ type: 'ping', data: payload });
      else if (op === Opcode.Pong) out.push({ type: 'pong', data: payload });
      else if (op === Opcode.Close) {
        if (payload.length === 1) return fail(CloseCode.ProtocolError, 'bad close payload');
        if (payload.length === 0) out.push({ type: 'close', reason: '' });
        else {
          const code = payload.readUInt16BE(0);
          const reason = payload.subarray(2);
          if (!validCloseCode(code)) return fail(CloseCode.ProtocolError, `bad close code ${code}`);
          if (!validUtf8(reason)) return fail(CloseCode.InvalidPayload, 'close reason is not UTF-8');
          out.push({ type: 'close', code, reason: reason.toString() });
        }
        this.dead = true; // nothing after a close frame is read
        return out;
      } else {
        if (op === Opcode.Continuation) {
          if (!this.frag) return fail(CloseCode.ProtocolError, 'continuation without a message');
        } else {
          if (this.frag) return fail(CloseCode.ProtocolError, 'new message inside a fragmented one');
          this.frag = { binary: op === Opcode.Binary, parts: [], size: 0 };
        }
        this.frag.parts.push(payload);
        this.frag.size += payload.length;
        if (fin) {
          const { binary, parts } = this.frag;
          this.frag = undefined;
          const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
          if (!binary && !validUtf8(data)) return fail(CloseCode.InvalidPayload, 'text message is not UTF-8');
          out.push({ type: 'message', binary, data });
        }
      }
    }
    return out;
  }
}

/** Validates the client's opening handshake; returns the response headers of the 101. */
export function handshake(headers: IncomingHttpHeaders): string[] {
  const upgrade = String(headers.upgrade ?? '').toLowerCase();
  const connection = String(headers.connection ?? '').toLowerCase();
  if (upgrade !== 'websocket' || !connection.split(',').some((t) => t.trim() === 'upgrade'))
    throw invalidArgument('not a websocket handshake: missing "Upgrade: websocket" / "Connection: Upgrade"');
  const version = headers['sec-websocket-version'];
  if (version !== '13') throw invalidArgument('unsupported Sec-WebSocket-Version (want 13)');
  const key = headers['sec-websocket-key'];
  if (typeof key !== 'string' || !key.trim()) throw invalidArgument('missing Sec-WebSocket-Key');
  const out = ['Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptKey(key.trim())}`];
  // x/net/websocket echoes a single offered subprotocol and refuses several
  const proto = String(headers['sec-websocket-protocol'] ?? '').trim();
  if (proto) {
    const offered = proto.split(',').map((p) => p.trim());
    if (offered.length !== 1) throw invalidArgument('several Sec-WebSocket-Protocol values offered');
    out.push(`Sec-WebSocket-Protocol: ${offered[0]}`);
  }
  return out;
}

/** How long to wait for the client's close reply before dropping the connection. */
const CLOSE_TIMEOUT_MS = 5_000;

/**
 * Bytes over a WebSocket: each write is one data frame, each client data
 * message is one chunk read. end() sends close 1000; a close from the client
 * ends the readable side. The stream is destroyed when the connection goes.
 */
export class WebSocketStream extends Duplex {
  private readonly parser: FrameParser;
  private closeSent = false;
  private timer: NodeJS.Timeout | undefined;
  private readEnded = false;

  constructor(
    private readonly socket: Duplex,
    private readonly opts: { binary: boolean; maxMessage?: number },
  ) {
    super();
    this.parser = new FrameParser({ maxMessage: opts.maxMessage });
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('end', () => {
      this.endRead();
      if (!socket.writableEnded) socket.end();
    });
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
  }

  private endRead(): void {
    if (this.readEnded) return;
    this.readEnded = true;
    this.push(null);
  }

  private sendClose(code: number, reason = ''): void {
    if (this.closeSent || this.socket.destroyed) return;
    this.closeSent = true;
    this.socket.write(encodeFrame(Opcode.Close, closePayload(code, reason)));
    this.socket.end();
    this.timer = setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS);
    this.timer.unref?.();
  }

  private onData(d: Buffer): void {
    for (const ev of this.parser.push(d)) {
      switch (ev.type) {
        case 'message':
          if (!this.readEnded && !this.push(ev.data)) this.socket.pause();
          break;
        case 'ping':
          if (!this.closeSent) this.socket.write(encodeFrame(Opcode.Pong, ev.data));
          break;
        case 'pong':
          break;
        case 'close':
          this.endRead();
          this.sendClose(ev.code ?? CloseCode.Normal);
          break;
        case 'error':
          this.endRead();
          this.sendClose(ev.code, ev.reason);
          break;
      }
    }
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.closeSent || this.socket.destroyed || chunk.length === 0) {
      cb();
      return;
    }
    const f = encodeFrame(this.opts.binary ? Opcode.Binary : Opcode.Text, chunk);
    if (this.socket.write(f)) cb();
    else this.socket.once('drain', () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.sendClose(CloseCode.Normal);
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.socket.destroy();
    cb(err);
  }
}

/**
 * Completes the handshake of `req` (400 via the thrown error when it is not a
 * valid one) and takes over its connection, as hijack() does for attach.
 */
export function acceptWebSocket(
  req: IncomingMessage,
  res: ServerResponse,
  opts: { binary: boolean; maxMessage?: number },
): WebSocketStream {
  const headers = handshake(req.headers);
  const sock = req.socket;
  res.detachSocket(sock);
  sock.setTimeout(0);
  sock.setNoDelay?.(true);
  sock.write(`HTTP/1.1 101 Switching Protocols\r\n${headers.join('\r\n')}\r\n\r\n`);
  return new WebSocketStream(sock, opts);
}
