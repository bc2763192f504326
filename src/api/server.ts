// The Engine API HTTP layer: routes with moby's paths (optionally prefixed by
// /v{version}), version negotiation, the one error → status mapping, and the
// common response headers. Routers declare the backend they need and are
// given it by src/cmd/berthd.ts; this module never imports a store.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { invalidArgument, notFound } from '../errors/index.js';
import { type Logger, nullLogger } from '../log/index.js';
import { messageOf, statusOf } from './errors.js';
import { writeJson } from './httputils.js';
import { API_VERSION, compareVersions, MIN_API_VERSION } from './version.js';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';

export interface ApiContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Path parameters, percent-decoded. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The API version of this request (from the path, else the server's). */
  version: string;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

export type Handler = (c: ApiContext) => Promise<void> | void;

export interface Route {
  method: Method;
  /** moby path syntax: `/images/{name:.*}/json`, `/containers/{id}/json`. */
  path: string;
  handler: Handler;
}

/** A group of routes over one backend (moby router/<resource>). */
export interface Router {
  readonly routes: readonly Route[];
}

interface Compiled extends Route {
  re: RegExp;
  names: string[];
}

function compile(r: Route): Compiled {
  const names: string[] = [];
  const src = r.path.replace(/[.*+?^$()|[\]\\]/g, (c) => (c === '{' || c === '}' ? c : `\\${c}`));
  const re = src.replace(/\{([a-zA-Z]+)(?::\\\.\\\*)?\}/g, (m, name: string) => {
    names.push(name);
    return m.includes(':') ? '(.+)' : '([^/]+)';
  });
  return { ...r, re: new RegExp(`^${re}$`), names };
}

export interface ServerOptions {
  routers: readonly Router[];
  logger?: Logger;
  /** The daemon's version for the Server header ("Docker/<v> (linux)"). */
  serverVersion: string;
  /** --api-cors-header */
  corsHeader?: string;
  /** Called after each request (metrics). */
  observe?: (method: string, route: string, status: number, seconds: number) => void;
}

const VERSIONED = /^\/v([0-9.]+)(\/.*)$/;

export function createApiHandler(opts: ServerOptions): RequestListener {
  const log = opts.logger ?? nullLogger;
  const routes = opts.routers.flatMap((r) => r.routes.map(compile));
  const serverHeader = `Docker/${opts.serverVersion} (linux)`;

  return (req, res) => {
    const started = process.hrtime.bigint();
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://localhost');
    let routeName = 'unknown';
    const ac = new AbortController();
    res.on('close', () => {
      ac.abort();
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      opts.observe?.(method, routeName, res.statusCode, secs);
    });
    if (opts.corsHeader) {
      res.setHeader('Access-Control-Allow-Origin', opts.corsHeader);
      res.setHeader('Access-Control-Allow-Headers', 'Origin, X-Requested-With, Content-Type, Accept, X-Registry-Auth');
      res.setHeader('Access-Control-Allow-Methods', 'HEAD, GET, POST, DELETE, PUT, OPTIONS');
    }
    const fail = (err: unknown) => {
      const status = statusOf(err);
      if (status >= 500) log.error(`Handler for ${method} ${url.pathname} returned error: ${messageOf(err)}`);
      else log.debug(`${method} ${url.pathname}: ${messageOf(err)}`, { status });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      writeJson(res, status, { message: messageOf(err) });
    };
    try {
      let pathname: string;
      try {
        pathname = decodeURIComponent(url.pathname);
      } catch {
        throw invalidArgument(`invalid URL escape in ${JSON.stringify(url.pathname)}`);
      }
      let version = '';
      const m = VERSIONED.exec(pathname);
      if (m) {
        version = m[1]!;
        pathname = m[2]!;
      }
      res.setHeader('Server', serverHeader);
      res.setHeader('Api-Version', API_VERSION);
      res.setHeader('Ostype', 'linux');
      if (method === 'OPTIONS' && opts.corsHeader) {
        res.writeHead(200).end();
        return;
      }
      let found: { route: Compiled; params: Record<string, string> } | undefined;
      for (const r of routes) {
        if (r.method !== method && !(method === 'HEAD' && r.method === 'GET' && r.path !== '/_ping')) continue;
        const mm = r.re.exec(pathname);
        if (!mm) continue;
        const params: Record<string, string> = {};
        r.names.forEach((n, i) => {
          params[n] = mm[i + 1]!;
        });
        found = { route: r, params };
        break;
      }
      if (!found) throw notFound('page not found');
      routeName = found.route.path;
      log.debug(`Calling ${method} ${url.pathname}`);
      const v = version || API_VERSION;
      if (compareVersions(v, MIN_API_VERSION) < 0) {
        throw invalidArgument(
          `client version ${v} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
        );
      }
      if (compareVersions(v, API_VERSION) > 0) {
        throw invalidArgument(`client version ${v} is too new. Maximum supported API version is ${API_VERSION}`);
      }
      const ctx: ApiContext = {
        req,
        res,
        params: found.params,
        query: url.searchParams,
        version: v,
        signal: ac.signal,
      };
      Promise.resolve()
        .then(() => found.route.handler(ctx))
        .catch(fail);
    } catch (e) {
      fail(e);
    }
  };
}
