// Connection hijacking (attach/exec) and the stdcopy framing, for the
// container routers (moby container_routes.go attach, pkg/stdcopy).
//
//   const sock = hijack(req, res, { multiplexed: !tty && apiAtLeast(version, '1.42') });
//   sock.write(frame(StdStream.Stdout, data))   // or raw bytes for a TTY
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export const RAW_STREAM = 'application/vnd.docker.raw-stream';
export const MULTIPLEXED_STREAM = 'application/vnd.docker.multiplexed-stream';

export enum StdStream {
  Stdin = 0,
  Stdout = 1,
  Stderr = 2,
  Systemerr = 3,
}

/** One stdcopy frame: [stream, 0, 0, 0, size uint32 BE] + payload. */
export function frame(stream: StdStream, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(body.length, 4);
  return Buffer.concat([h, body]);
}

/** Splits a stdcopy byte stream back into frames; keeps partial input between calls. */
export class FrameDecoder {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): { stream: StdStream; payload: Buffer }[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: { stream: StdStream; payload: Buffer }[] = [];
    while (this.buf.length >= 8) {
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + size) break;
      out.push({ stream: this.buf[0] as StdStream, payload: this.buf.subarray(8, 8 + size) });
      this.buf = this.buf.subarray(8 + size);
    }
    return out;
  }
}

/**
 * Takes over the connection of `req`: writes `101 UPGRADED` (when the client
 * asked for an upgrade) or `200 OK` with the stream content type, and returns
 * the raw socket. The HTTP server no longer manages the connection.
 */
export function hijack(req: IncomingMessage, res: ServerResponse, opts: { multiplexed: boolean }): Duplex {
  const ct = opts.multiplexed ? MULTIPLEXED_STREAM : RAW_STREAM;
  const sock = req.socket;
  res.detachSocket(sock);
  sock.setTimeout(0);
  sock.setNoDelay?.(true);
  const upgrade = req.headers.upgrade !== undefined;
  sock.write(
    upgrade
      ? `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${ct}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`
      : `HTTP/1.1 200 OK\r\nContent-Type: ${ct}\r\n\r\n`,
  );
  return sock;
}
