// HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment apply to registry
// traffic (undici's EnvHttpProxyAgent in the transport). The proxy is a tiny
// CONNECT + absolute-URI forward proxy written here, on 127.0.0.1, that only
// forwards to 127.0.0.1 and records what it was asked.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { haveDistribution, startDistribution, type Target } from '../registry/helpers.js';
import { buildImage, hostOf, openEngine, uploadImage } from './pull-push-kit.js';

interface Proxy {
  url: string;
  seen: string[];
  close(): Promise<void>;
}

async function startProxy(): Promise<Proxy> {
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    // absolute-form request: GET http://127.0.0.1:port/v2/… HTTP/1.1
    seen.push(`${req.method} ${req.url}`);
    let u: URL;
    try {
      u = new URL(req.url!);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (u.hostname !== '127.0.0.1') {
      res.writeHead(403).end();
      return;
    }
    const up = http.request(u, { method: req.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode!, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connect', (req: http.IncomingMessage, sock: net.Socket, head: Buffer) => {
    const m = /^127\.0\.0\.1:(\d+)$/.exec(req.url ?? '');
    if (!m) {
      seen.push(`CONNECT ${req.url} refused`);
      sock.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    const up = net.connect(Number(m[1]), '127.0.0.1', () => {
      sock.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      // what the client speaks in the tunnel: TLS (https URL) or plain HTTP
      const start = (first: Buffer) => {
        seen.push(`CONNECT ${req.url} ${first[0] === 0x16 ? 'tls' : 'http'}`);
        up.write(first);
        up.pipe(sock);
        sock.pipe(up);
      };
      if (head.length) start(head);
      else sock.once('data', start);
    });
    up.on('error', () => sock.destroy());
    sock.on('error', () => up.destroy());
    sock.on('close', () => up.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const PROXY_VARS = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'];

/** Runs `fn` with exactly these proxy variables in the environment (the transport reads them when created). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = new Map(PROXY_VARS.map((k) => [k, process.env[k]]));
  for (const k of PROXY_VARS) delete process.env[k];
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('proxies from the environment', { skip: !haveDistribution && 'docker-registry missing' }, () => {
  let reg: Target;
  let proxy: Proxy;
  const img = buildImage([{ files: { a: 'through the proxy' } }, { files: { b: Buffer.alloc(100_000, 1) } }]);
  before(async () => {
    reg = await startDistribution();
    proxy = await startProxy();
    await uploadImage(reg.url, 'proxied/app', 'v1', img);
  });
  after(async () => {
    await proxy?.close();
    await reg?.close();
  });

  const pullWith = (vars: Record<string, string>) =>
    withEnv(vars, async () => {
      const e = await openEngine();
      try {
        const r = await e.dist.pull(`${hostOf(reg.url)}/proxied/app:v1`);
        assert.equal(r.imageId, img.configDigest);
        assert.deepEqual(e.service.inspect(r.imageId).RootFS.Layers, img.diffIds);
      } finally {
        await e.close();
      }
    });

  // 127.0.0.1 is an insecure registry by default: a pull tries https first, then http (as dockerd)
  test('HTTP_PROXY: the http requests of a pull go through the proxy, the https attempt does not (as Go)', async () => {
    proxy.seen.length = 0;
    await pullWith({ HTTP_PROXY: proxy.url });
    assert.ok(proxy.seen.length > 0, 'the proxy was used');
    for (const s of proxy.seen) assert.equal(s, `CONNECT ${hostOf(reg.url)} http`);
  });

  test('lower-case http_proxy works too', async () => {
    proxy.seen.length = 0;
    await pullWith({ http_proxy: proxy.url });
    assert.ok(proxy.seen.length > 0);
    for (const s of proxy.seen) assert.equal(s, `CONNECT ${hostOf(reg.url)} http`);
  });

  test('HTTPS_PROXY: only the https attempt goes through the proxy', async () => {
    proxy.seen.length = 0;
    await pullWith({ HTTPS_PROXY: proxy.url });
    assert.ok(proxy.seen.length > 0, 'the proxy was used');
    for (const s of proxy.seen) assert.equal(s, `CONNECT ${hostOf(reg.url)} tls`);
  });

  test('NO_PROXY bypasses the proxies (by host, and by host:port)', async () => {
    const cases: Array<Record<string, string>> = [
      { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: '127.0.0.1' },
      { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: `example.invalid,${hostOf(reg.url)}` },
    ];
    for (const c of cases) {
      proxy.seen.length = 0;
      await pullWith(c);
      assert.deepEqual(proxy.seen, [], `the proxy saw nothing with ${JSON.stringify(c)}`);
    }
    // and a proxy that is down is never contacted for a NO_PROXY host
    await pullWith({ HTTP_PROXY: 'http://127.0.0.1:1', NO_PROXY: '127.0.0.1' });
  });

  test('a proxy that is down fails the pull with a clear error', async () => {
    await assert.rejects(pullWith({ HTTP_PROXY: 'http://127.0.0.1:1' }), (e: Error) => {
      assert.match(e.message, /127\.0\.0\.1:1|proxy|ECONNREFUSED|connection refused/i);
      return true;
    });
  });
});
