// Requests carrying `Upgrade: tcp` (docker attach / exec start) reach node's
// 'upgrade' event with a bare socket, not the request listener: this adapter
// reads their body (Content-Length), rebuilds a request and a response on the
// socket and runs the ordinary API handler, whose hijack() then takes the
// connection over. Without it node's HTTP parser would keep reading the
// socket and choke on the client's stdin.
import http from 'node:http';
import type { Duplex } from 'node:stream';

const MAX_UPGRADE_BODY = 1 << 20;

export function upgradeListener(
  handler: http.RequestListener,
): (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    const len = Number(req.headers['content-length'] ?? 0);
    if (!Number.isFinite(len) || len < 0 || len > MAX_UPGRADE_BODY) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    let acc = head;
    const go = () => {
      const body = acc.subarray(0, len);
      const rest = acc.subarray(len);
      if (rest.length) socket.unshift(rest);
      const fake = new http.IncomingMessage(socket as never);
      fake.method = req.method;
      fake.url = req.url;
      fake.headers = req.headers;
      fake.rawHeaders = req.rawHeaders;
      fake.httpVersionMajor = req.httpVersionMajor;
      fake.httpVersionMinor = req.httpVersionMinor;
      fake.httpVersion = req.httpVersion;
      fake.complete = true; // else ending the body stream destroys the socket
      if (body.length) fake.push(body);
      fake.push(null);
      const res = new http.ServerResponse(fake);
      res.shouldKeepAlive = false;
      res.assignSocket(socket as never);
      res.on('finish', () => {
        if (!socket.destroyed && res.socket) socket.end();
      });
      socket.on('error', () => {});
      handler(fake, res);
    };
    if (acc.length >= len) return go();
    const onData = (d: Buffer) => {
      acc = Buffer.concat([acc, d]);
      if (acc.length < len) return;
      socket.off('data', onData);
      socket.pause();
      go();
    };
    socket.on('data', onData);
  };
}
