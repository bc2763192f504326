// /containers/*, /exec/* and /commit (moby router/container): lifecycle,
// hijacked attach and exec, attach over a websocket, logs, list/inspect/top/stats, archive, export, commit.
import { BerthError, invalidArgument } from '../../../errors/index.js';
import { messageOf } from '../../errors.js';
import { Filters } from '../../filters.js';
import { hijack } from '../../hijack.js';
import { boolValue, boolValueOrDefault, intValue, readJson, writeJson } from '../../httputils.js';
import type { ApiContext, Route, Router } from '../../server.js';
import { versionAtLeast } from '../../version.js';
import { acceptWebSocket } from '../../websocket.js';
import type { ContainerBackend } from './backend.js';

/** Seconds (RFC3339 or unix[.nanos]) → ns since the epoch, for logs since/until. */
export type TimeParser = (v: string) => bigint;

function optInt(c: ApiContext, key: string): number | undefined {
  const v = c.query.get(key);
  if (v === null || v === '') return undefined;
  return intValue(c.query, key);
}

export class ContainerRouter implements Router {
  readonly routes: Route[];

  constructor(
    private readonly b: ContainerBackend,
    private readonly parseTime: TimeParser,
  ) {
    const r = (method: Route['method'], path: string, h: (c: ApiContext) => Promise<void> | void): Route => ({
      method,
      path,
      handler: h,
    });
    this.routes = [
      r('GET', '/containers/json', (c) => this.list(c)),
      r('GET', '/containers/{name}/export', (c) => this.export(c)),
      r('GET', '/containers/{name}/changes', async (c) => writeJson(c.res, 200, await this.b.changes(c.params.name!))),
      r('GET', '/containers/{name}/json', async (c) =>
        writeJson(c.res, 200, await this.b.inspect(c.params.name!, boolValue(c.query, 'size'))),
      ),
      r('GET', '/containers/{name}/top', async (c) =>
        writeJson(c.res, 200, await this.b.top(c.params.name!, c.query.get('ps_args') ?? '')),
      ),
      r('GET', '/containers/{name}/logs', (c) => this.logs(c)),
      r('GET', '/containers/{name}/attach/ws', (c) => this.attachWs(c)),
      r('GET', '/containers/{name}/stats', (c) => this.stats(c)),
      r('HEAD', '/containers/{name}/archive', (c) => this.headArchive(c)),
      r('GET', '/containers/{name}/archive', (c) => this.getArchive(c)),
      r('PUT', '/containers/{name}/archive', (c) => this.putArchive(c)),
      r('GET', '/exec/{id}/json', (c) => writeJson(c.res, 200, this.b.execInspect(c.params.id!))),
      r('POST', '/containers/create', (c) => this.create(c)),
      r('POST', '/containers/prune', async (c) =>
        writeJson(c.res, 200, await this.b.prune(Filters.parse(c.query.get('filters')))),
      ),
      r('POST', '/containers/{name}/kill', async (c) => {
        await this.b.kill(c.params.name!, c.query.get('signal') ?? '');
        c.res.writeHead(204).end();
      }),
      r('POST', '/containers/{name}/pause', async (c) => {
        await this.b.pause(c.params.name!);
        c.res.writeHead(204).end();
      }),
      r('POST', '/containers/{name}/unpause', async (c) => {
        await this.b.unpause(c.params.name!);
        c.res.writeHead(204).end();
      }),
      r('POST', '/containers/{name}/restart', async (c) => {
        await this.b.restart(c.params.name!, optInt(c, 't'));
        c.res.writeHead(204).end();
      }),
      r('POST', '/containers/{name}/start', (c) => this.notModified(c, () => this.b.start(c.params.name!))),
      r('POST', '/containers/{name}/stop', (c) =>
        this.notModified(c, () => this.b.stop(c.params.name!, optInt(c, 't'))),
      ),
      r('POST', '/containers/{name}/wait', (c) => this.wait(c)),
      r('POST', '/containers/{name}/resize', async (c) => {
        await this.b.resize(c.params.name!, intValue(c.query, 'h'), intValue(c.query, 'w'));
        c.res.writeHead(200).end();
      }),
      r('POST', '/containers/{name}/attach', (c) => this.attach(c)),
      r('POST', '/containers/{name}/exec', (c) => this.execCreate(c)),
      r('POST', '/exec/{id}/start', (c) => this.execStart(c)),
      r('POST', '/exec/{id}/resize', (c) => {
        this.b.execResize(c.params.id!, intValue(c.query, 'h'), intValue(c.query, 'w'));
        c.res.writeHead(200).end();
      }),
      r('POST', '/containers/{name}/rename', async (c) => {
        await this.b.rename(c.params.name!, c.query.get('name') ?? '');
        c.res.writeHead(204).end();
      }),
      r('POST', '/containers/{name}/update', async (c) => {
        const body = (await readJson<Record<string, unknown>>(c.req)) ?? {};
        writeJson(c.res, 200, await this.b.update(c.params.name!, body));
      }),
      r('POST', '/commit', (c) => this.commit(c)),
      r('DELETE', '/containers/{name}', async (c) => {
        if (boolValue(c.query, 'link'))
          throw invalidArgument('Conflict, cannot remove the default link name of the container');
        await this.b.remove(c.params.name!, { force: boolValue(c.query, 'force'), volumes: boolValue(c.query, 'v') });
        c.res.writeHead(204).end();
      }),
    ];
  }

  private async notModified(c: ApiContext, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
      c.res.writeHead(204).end();
    } catch (e) {
      if (e instanceof BerthError && e.kind === 'not-modified') {
        c.res.writeHead(304).end();
        return;
      }
      throw e;
    }
  }

  private async list(c: ApiContext): Promise<void> {
    const filters = Filters.parse(c.query.get('filters'));
    const out = await this.b.list({
      all: boolValue(c.query, 'all'),
      limit: intValue(c.query, 'limit', -1),
      size: boolValue(c.query, 'size'),
      filters,
    });
    writeJson(c.res, 200, out);
  }

  private async create(c: ApiContext): Promise<void> {
    const body = await readJson<Record<string, unknown>>(c.req);
    if (!body) throw invalidArgument('Config cannot be empty in order to create a container');
    const { HostConfig, NetworkingConfig, ...config } = body;
    const name = c.query.get('name') ?? undefined;
    const r = await this.b.create({
      name: name || undefined,
      config,
      hostConfig: (HostConfig as Record<string, unknown>) ?? null,
      networkingConfig: (NetworkingConfig as Record<string, unknown>) ?? null,
      platform: c.query.get('platform') ?? undefined,
    });
    writeJson(c.res, 201, r);
  }

  private async wait(c: ApiContext): Promise<void> {
    const p = this.b.wait(c.params.name!, c.query.get('condition') ?? '', c.signal);
    p.catch(() => {});
    // headers first: `docker run` starts the container once the wait is registered
    c.res.writeHead(200, { 'Content-Type': 'application/json' });
    c.res.flushHeaders();
    try {
      c.res.end(`${JSON.stringify(await p)}\n`);
    } catch (e) {
      if (!c.res.destroyed) c.res.end(`${JSON.stringify({ StatusCode: -1, Error: { Message: messageOf(e) } })}\n`);
    }
  }

  private async attach(c: ApiContext): Promise<void> {
    const q = c.query;
    const { tty } = this.b.attachCheck(c.params.name!);
    const detachKeys = q.get('detachKeys') ?? undefined;
    const sock = hijack(c.req, c.res, { multiplexed: !tty && versionAtLeast(c.version, '1.42') });
    try {
      await this.b.attach(
        c.params.name!,
        {
          stdin: boolValue(q, 'stdin'),
          stdout: boolValue(q, 'stdout'),
          stderr: boolValue(q, 'stderr'),
          stream: boolValue(q, 'stream'),
          logs: boolValue(q, 'logs'),
          detachKeys,
        },
        sock,
      );
    } catch (e) {
      if (!sock.destroyed) sock.end(`${messageOf(e)}\r\n`);
    }
  }

  /**
   * GET /containers/{name}/attach/ws (moby wsContainersAttach): the attach
   * above over a websocket: never multiplexed, binary frames from API 1.28
   * (text before), stdin/stdout/stderr honoured from 1.42 (all three before),
   * no Origin check; close 1000 when the attach ends.
   */
  private async attachWs(c: ApiContext): Promise<void> {
    const q = c.query;
    this.b.attachCheck(c.params.name!);
    const all = !versionAtLeast(c.version, '1.42');
    const ws = acceptWebSocket(c.req, c.res, { binary: versionAtLeast(c.version, '1.28') });
    try {
      await this.b.attach(
        c.params.name!,
        {
          stdin: all || boolValue(q, 'stdin'),
          stdout: all || boolValue(q, 'stdout'),
          stderr: all || boolValue(q, 'stderr'),
          stream: boolValue(q, 'stream'),
          logs: boolValue(q, 'logs'),
          detachKeys: q.get('detachKeys') ?? undefined,
          multiplex: false,
        },
        ws,
      );
    } catch (e) {
      if (!ws.destroyed) ws.end(`Error attaching: ${messageOf(e)}\n`);
    }
  }

  private async logs(c: ApiContext): Promise<void> {
    const q = c.query;
    const since = q.get('since');
    const until = q.get('until');
    const tailRaw = q.get('tail') ?? 'all';
    let tail: number | undefined;
    if (tailRaw !== 'all' && tailRaw !== '') {
      if (!/^-?\d+$/.test(tailRaw)) tail = undefined;
      else tail = Number(tailRaw);
    }
    const { tty, chunks } = this.b.logs(
      c.params.name!,
      {
        stdout: boolValue(q, 'stdout'),
        stderr: boolValue(q, 'stderr'),
        follow: boolValue(q, 'follow'),
        since: since ? this.parseTime(since) : undefined,
        until: until ? this.parseTime(until) : undefined,
        tail,
        timestamps: boolValue(q, 'timestamps'),
        details: boolValue(q, 'details'),
      },
      c.signal,
    );
    const multiplexed = !tty && versionAtLeast(c.version, '1.42');
    c.res.writeHead(200, {
      'Content-Type': multiplexed ? 'application/vnd.docker.multiplexed-stream' : 'application/vnd.docker.raw-stream',
    });
    c.res.flushHeaders();
    try {
      for await (const b of chunks) {
        if (c.res.destroyed) break;
        if (!c.res.write(b)) await new Promise((r) => c.res.once('drain', r));
      }
    } catch (e) {
      if (!c.signal.aborted) c.res.write(`Error: ${messageOf(e)}\n`);
    }
    c.res.end();
  }

  private async stats(c: ApiContext): Promise<void> {
    const stream = boolValueOrDefault(c.query, 'stream', true);
    const oneShot = boolValue(c.query, 'one-shot');
    let started = false;
    await this.b.stats(
      c.params.name!,
      { stream, oneShot },
      (d) => {
        if (!started) {
          c.res.writeHead(200, { 'Content-Type': 'application/json' });
          started = true;
        }
        c.res.write(`${JSON.stringify(d)}\n`);
      },
      c.signal,
    );
    if (!started) c.res.writeHead(200, { 'Content-Type': 'application/json' });
    c.res.end();
  }

  private statHeader(s: unknown): string {
    return Buffer.from(JSON.stringify(s)).toString('base64');
  }

  private async headArchive(c: ApiContext): Promise<void> {
    const st = await this.b.statPath(c.params.name!, c.query.get('path') ?? '');
    c.res.writeHead(200, { 'X-Docker-Container-Path-Stat': this.statHeader(st) }).end();
  }

  private async getArchive(c: ApiContext): Promise<void> {
    const { stat, tar } = await this.b.archive(c.params.name!, c.query.get('path') ?? '');
    c.res.writeHead(200, {
      'Content-Type': 'application/x-tar',
      'X-Docker-Container-Path-Stat': this.statHeader(stat),
    });
    tar.on('error', () => c.res.destroy());
    c.res.on('close', () => tar.destroy());
    tar.pipe(c.res);
  }

  private async putArchive(c: ApiContext): Promise<void> {
    await this.b.extract(c.params.name!, c.query.get('path') ?? '', c.req, {
      noOverwriteDirNonDir: boolValue(c.query, 'noOverwriteDirNonDir'),
      copyUIDGID: boolValue(c.query, 'copyUIDGID'),
    });
    c.res.writeHead(200).end();
  }

  private async export(c: ApiContext): Promise<void> {
    const tar = await this.b.export(c.params.name!);
    c.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    tar.on('error', () => c.res.destroy());
    c.res.on('close', () => tar.destroy());
    tar.pipe(c.res);
  }

  private async commit(c: ApiContext): Promise<void> {
    const q = c.query;
    const config = (await readJson<Record<string, unknown>>(c.req)) ?? null;
    const r = await this.b.commit({
      container: q.get('container') ?? '',
      repo: q.get('repo') || undefined,
      tag: q.get('tag') || undefined,
      comment: q.get('comment') || undefined,
      author: q.get('author') || undefined,
      changes: q.getAll('changes'),
      pause: boolValueOrDefault(q, 'pause', true),
      config,
    });
    writeJson(c.res, 201, r);
  }

  private async execCreate(c: ApiContext): Promise<void> {
    const body = (await readJson<Record<string, unknown>>(c.req)) ?? {};
    const id = this.b.execCreate(c.params.name!, body);
    writeJson(c.res, 201, { Id: id });
  }

  private async execStart(c: ApiContext): Promise<void> {
    const body =
      (await readJson<{ Detach?: boolean; Tty?: boolean; ConsoleSize?: [number, number] | null }>(c.req)) ?? {};
    const id = c.params.id!;
    const { tty: execTty } = this.b.execCheck(id);
    const tty = body.Tty ?? execTty;
    if (body.Detach) {
      void this.b.execStart(id, { tty, consoleSize: body.ConsoleSize }).catch(() => {});
      c.res.writeHead(200).end();
      return;
    }
    const sock = hijack(c.req, c.res, { multiplexed: !tty && versionAtLeast(c.version, '1.42') });
    try {
      await this.b.execStart(id, { tty, consoleSize: body.ConsoleSize }, sock);
    } catch {
      if (!sock.destroyed) sock.end();
    }
  }
}
