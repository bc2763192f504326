// /_ping, /version, /info, /events, /system/df, /auth (moby router/system).
import { invalidArgument, notImplemented } from '../../../errors/index.js';
import { Filters } from '../../filters.js';
import { readJson, writeJson } from '../../httputils.js';
import type { ApiContext, Route, Router } from '../../server.js';
import type { AuthBackend, EventLike, SystemBackend } from './backend.js';

const EVENT_FILTERS = [
  'config',
  'container',
  'daemon',
  'event',
  'image',
  'label',
  'network',
  'node',
  'plugin',
  'scope',
  'secret',
  'service',
  'type',
  'volume',
];

/** Seconds since the epoch (fractional) for a since/until value. */
export type TimeParser = (value: string) => number;

/** moby events.Filter.Include for the fields berth's events carry. */
export function eventMatches(f: Filters, ev: EventLike): boolean {
  if (f.contains('event')) {
    const a = ev.Action.includes(':') ? ev.Action.slice(0, ev.Action.indexOf(':')) : ev.Action;
    if (!f.exactMatch('event', ev.Action) && !f.exactMatch('event', a)) return false;
  }
  if (!f.exactMatch('type', ev.Type)) return false;
  if (f.contains('scope') && !f.exactMatch('scope', ev.scope)) return false;
  if (f.contains('image')) {
    const nameAttr = ev.Type === 'image' ? 'name' : 'image';
    const name = ev.Actor.Attributes[nameAttr] ?? '';
    const strip = (s: string) => s.replace(/(@sha256:[a-f0-9]+|:[\w][\w.-]{0,127})$/, '');
    const cands = [ev.Actor.ID, name, strip(ev.Actor.ID), strip(name)];
    if (!cands.some((c) => f.exactMatch('image', c))) return false;
  }
  if (f.contains('container') && !(ev.Type === 'container' && f.exactMatch('container', ev.Actor.ID))) {
    if (!f.exactMatch('container', ev.Actor.Attributes.name ?? '')) return false;
  }
  for (const k of ['volume', 'network', 'plugin', 'daemon', 'node', 'service', 'secret', 'config']) {
    if (
      f.contains(k) &&
      !(ev.Type === k && (f.exactMatch(k, ev.Actor.ID) || f.exactMatch(k, ev.Actor.Attributes.name ?? '')))
    )
      return false;
  }
  return f.matchKVList('label', ev.Actor.Attributes);
}

export class SystemRouter implements Router {
  readonly routes: Route[];

  constructor(
    private readonly backend: SystemBackend,
    private readonly opts: { parseTime: TimeParser; builderVersion?: string; auth?: AuthBackend },
  ) {
    this.routes = [
      { method: 'GET', path: '/_ping', handler: (c) => this.ping(c) },
      { method: 'HEAD', path: '/_ping', handler: (c) => this.ping(c) },
      { method: 'GET', path: '/version', handler: (c) => writeJson(c.res, 200, this.backend.version()) },
      { method: 'GET', path: '/info', handler: (c) => writeJson(c.res, 200, this.backend.info()) },
      { method: 'GET', path: '/system/df', handler: (c) => this.df(c) },
      { method: 'GET', path: '/events', handler: (c) => this.events(c) },
      { method: 'POST', path: '/auth', handler: (c) => this.auth(c) },
    ];
  }

  private ping(c: ApiContext): void {
    const h: Record<string, string> = {
      'Cache-Control': 'no-cache, no-store, must-revalidate',
      Pragma: 'no-cache',
      'Docker-Experimental': String(this.backend.experimental()),
      'Builder-Version': this.opts.builderVersion ?? '1',
    };
    if (c.req.method === 'HEAD') {
      c.res.writeHead(200, { ...h, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': '0' });
      c.res.end();
      return;
    }
    c.res.writeHead(200, { ...h, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': '2' });
    c.res.end('OK');
  }

  private async df(c: ApiContext): Promise<void> {
    const types = c.query.getAll('type');
    for (const t of types) {
      if (!['container', 'image', 'volume', 'build-cache'].includes(t)) {
        throw invalidArgument(`unknown object type: ${t}`);
      }
    }
    writeJson(c.res, 200, await this.backend.diskUsage(types));
  }

  private async auth(c: ApiContext): Promise<void> {
    const body = await readJson<Record<string, unknown>>(c.req);
    if (!this.opts.auth) throw notImplemented('docker login is not available in this berthd yet');
    writeJson(c.res, 200, await this.opts.auth.auth(body ?? {}));
  }

  private events(c: ApiContext): void {
    const sinceRaw = c.query.get('since') ?? '';
    const untilRaw = c.query.get('until') ?? '';
    const since = sinceRaw ? this.opts.parseTime(sinceRaw) : undefined;
    const until = untilRaw ? this.opts.parseTime(untilRaw) : undefined;
    if (until !== undefined && since !== undefined && until < since) {
      throw invalidArgument(`\`since\` time (${sinceRaw}) cannot be after \`until\` time (${untilRaw})`);
    }
    const f = Filters.parse(c.query.get('filters')).validate(EVENT_FILTERS);
    const now = Date.now() / 1000;
    const onlyPast = until !== undefined && until < now;
    const inRange = (ev: EventLike) => {
      const t = ev.timeNano / 1e9;
      return (since === undefined || t >= since) && (until === undefined || t <= until);
    };
    c.res.writeHead(200, { 'Content-Type': 'application/json' });
    c.res.flushHeaders();
    const send = (ev: EventLike) => {
      if (inRange(ev) && eventMatches(f, ev))
        c.res.write(`${this.backend.encodeEvent ? this.backend.encodeEvent(ev) : JSON.stringify(ev)}\n`);
    };
    const sub = this.backend.subscribe((ev) => send(ev));
    if (since !== undefined || until !== undefined) for (const ev of sub.past) send(ev);
    let timer: NodeJS.Timeout | undefined;
    const stop = () => {
      sub.cancel();
      if (timer) clearTimeout(timer);
      c.res.end();
    };
    if (onlyPast) {
      stop();
      return;
    }
    if (until !== undefined) timer = setTimeout(stop, Math.max(0, (until - now) * 1000));
    c.signal.addEventListener('abort', stop, { once: true });
  }
}
