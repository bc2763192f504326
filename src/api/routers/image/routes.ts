// /images/* (moby router/image): list, inspect, history, tag, delete, prune,
// save (get), load, create (import; pull when a distribution backend is given), push.
import { invalidArgument, notImplemented } from '../../../errors/index.js';
import { JsonMessageWriter } from '../../../progress/index.js';
import { messageOf } from '../../errors.js';
import { Filters } from '../../filters.js';
import { boolValue, boolValueOrDefault, writeJson } from '../../httputils.js';
import type { ApiContext, Route, Router } from '../../server.js';
import { versionAtLeast } from '../../version.js';
import type { DistributionBackend, ImageBackend } from './backend.js';

/** containerd platforms.Parse for the forms the CLI sends: os[/arch[/variant]]. */
export function parsePlatform(s: string): { os: string; architecture?: string; variant?: string } {
  const parts = s.toLowerCase().split('/');
  if (parts.length > 3 || parts.some((p) => !/^[a-z0-9_-]+$/.test(p))) {
    throw invalidArgument(`"${s}": unknown operating system or architecture: invalid argument`);
  }
  const archAlias: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64' };
  const known = new Set(['linux', 'windows', 'darwin', 'freebsd']);
  if (!known.has(parts[0]!)) {
    if (parts.length === 1) return { os: 'linux', architecture: archAlias[parts[0]!] ?? parts[0]! };
    throw invalidArgument(`"${s}": unknown operating system or architecture: invalid argument`);
  }
  const p: { os: string; architecture?: string; variant?: string } = { os: parts[0]! };
  if (parts[1]) p.architecture = archAlias[parts[1]] ?? parts[1];
  if (parts[2]) p.variant = parts[2];
  return p;
}

function decodeAuth(header: string | string[] | undefined): Record<string, unknown> | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h) return undefined;
  try {
    return JSON.parse(Buffer.from(h.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
  } catch {
    return undefined;
  }
}

export class ImageRouter implements Router {
  readonly routes: Route[];

  constructor(
    private readonly backend: ImageBackend,
    private readonly dist?: DistributionBackend,
  ) {
    this.routes = [
      { method: 'GET', path: '/images/json', handler: (c) => this.list(c) },
      { method: 'GET', path: '/images/search', handler: () => this.unavailable('docker search') },
      { method: 'GET', path: '/images/get', handler: (c) => this.save(c, c.query.getAll('names')) },
      { method: 'GET', path: '/images/{name:.*}/get', handler: (c) => this.save(c, [c.params.name!]) },
      { method: 'GET', path: '/images/{name:.*}/history', handler: (c) => this.history(c) },
      { method: 'GET', path: '/images/{name:.*}/json', handler: (c) => this.inspect(c) },
      { method: 'GET', path: '/distribution/{name:.*}/json', handler: (c) => this.distInspect(c) },
      { method: 'POST', path: '/images/load', handler: (c) => this.load(c) },
      { method: 'POST', path: '/images/create', handler: (c) => this.create(c) },
      { method: 'POST', path: '/images/prune', handler: (c) => this.prune(c) },
      { method: 'POST', path: '/images/{name:.*}/push', handler: (c) => this.push(c) },
      { method: 'POST', path: '/images/{name:.*}/tag', handler: (c) => this.tag(c) },
      { method: 'DELETE', path: '/images/{name:.*}', handler: (c) => this.delete(c) },
    ];
  }

  private unavailable(what: string): never {
    throw notImplemented(`${what} is not available in this berthd yet`);
  }

  private list(c: ApiContext): void {
    const filters = Filters.parse(c.query.get('filters'));
    // API < 1.28 (moby): ?filter=<reference>
    const legacy = c.query.get('filter');
    if (legacy && !versionAtLeast(c.version, '1.28') && !filters.contains('reference')) {
      Object.assign(filters, Filters.parse(JSON.stringify({ ...toObj(filters), reference: [legacy] })));
    }
    const withExtraAttrs = versionAtLeast(c.version, '1.42') && boolValue(c.query, 'shared-size');
    writeJson(c.res, 200, this.backend.list({ all: boolValue(c.query, 'all'), filters, withExtraAttrs }));
  }

  private async inspect(c: ApiContext): Promise<void> {
    writeJson(c.res, 200, await this.backend.inspect(c.params.name!));
  }

  private history(c: ApiContext): void {
    writeJson(c.res, 200, this.backend.history(c.params.name!));
  }

  private tag(c: ApiContext): void {
    this.backend.tag(c.params.name!, c.query.get('repo') ?? '', c.query.get('tag') ?? '');
    c.res.writeHead(201).end();
  }

  private async delete(c: ApiContext): Promise<void> {
    const name = c.params.name!;
    if (name.trim() === '') throw invalidArgument('image name cannot be blank');
    const force = boolValue(c.query, 'force');
    const prune = !boolValue(c.query, 'noprune');
    writeJson(c.res, 200, await this.backend.delete(name, { force, prune }));
  }

  private async prune(c: ApiContext): Promise<void> {
    const filters = Filters.parse(c.query.get('filters'));
    writeJson(c.res, 200, await this.backend.prune(filters));
  }

  private async save(c: ApiContext, names: string[]): Promise<void> {
    this.backend.checkSave(names);
    c.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    try {
      await this.backend.save(names, c.res);
      c.res.end();
    } catch (e) {
      // moby writes the error as a JSON message into the stream once bytes went out
      if (!c.res.destroyed)
        c.res.end(`${JSON.stringify({ errorDetail: { message: messageOf(e) }, error: messageOf(e) })}\r\n`);
    }
  }

  private async load(c: ApiContext): Promise<void> {
    boolValueOrDefault(c.query, 'quiet', true);
    c.res.writeHead(200, { 'Content-Type': 'application/json' });
    const out = new JsonMessageWriter(c.res);
    try {
      await this.backend.load(c.req, out);
    } catch (e) {
      out.error(messageOf(e));
    }
    c.res.end();
  }

  private async create(c: ApiContext): Promise<void> {
    const q = c.query;
    const image = q.get('fromImage') ?? '';
    let platform: ReturnType<typeof parsePlatform> | undefined;
    if (versionAtLeast(c.version, '1.32') && q.get('platform')) platform = parsePlatform(q.get('platform')!);
    const out = new JsonMessageWriter(c.res);
    const start = () => {
      if (!c.res.headersSent) c.res.writeHead(200, { 'Content-Type': 'application/json' });
    };
    // headers go out with the first message, so errors before it are plain API errors
    const sink = {
      status: (s: string, id?: string, d?: Parameters<JsonMessageWriter['status']>[2]) => {
        start();
        out.status(s, id, d);
      },
      stream: (t: string) => {
        start();
        out.stream(t);
      },
      aux: (v: unknown) => {
        start();
        out.aux(v);
      },
      error: (m: string) => {
        start();
        out.error(m);
      },
      get closed() {
        return out.closed;
      },
    };
    try {
      if (image !== '') {
        if (!this.dist) this.unavailable('pulling images');
        const req = {
          image,
          tag: q.get('tag') ?? '',
          auth: decodeAuth(c.req.headers['x-registry-auth']),
          signal: c.signal,
        };
        await this.dist.pull(platform ? { ...req, platform } : req, sink);
      } else {
        const src = q.get('fromSrc') ?? '';
        if (src === '') throw invalidArgument('fromSrc or fromImage is required');
        const req = {
          src,
          repo: q.get('repo') ?? '',
          tag: q.get('tag') ?? '',
          message: q.get('message') ?? '',
          changes: q.getAll('changes'),
          ...(platform ? { platform } : {}),
        };
        await this.backend.import(c.req, req, sink);
      }
    } catch (e) {
      if (!c.res.headersSent) throw e;
      out.error(messageOf(e));
    }
    c.res.end();
  }

  private async push(c: ApiContext): Promise<void> {
    if (!this.dist) this.unavailable('pushing images');
    c.res.writeHead(200, { 'Content-Type': 'application/json' });
    const out = new JsonMessageWriter(c.res);
    try {
      await this.dist.push(
        {
          name: c.params.name!,
          tag: c.query.get('tag') ?? '',
          auth: decodeAuth(c.req.headers['x-registry-auth']),
          signal: c.signal,
        },
        out,
      );
    } catch (e) {
      out.error(messageOf(e));
    }
    c.res.end();
  }

  private async distInspect(c: ApiContext): Promise<void> {
    if (!this.dist?.distributionInspect) this.unavailable('distribution inspect');
    writeJson(
      c.res,
      200,
      await this.dist.distributionInspect(c.params.name!, decodeAuth(c.req.headers['x-registry-auth'])),
    );
  }
}

function toObj(f: Filters): Record<string, string[]> {
  const o: Record<string, string[]> = {};
  for (const k of f.keys()) o[k] = f.get(k);
  return o;
}
