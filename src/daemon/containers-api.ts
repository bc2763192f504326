// The container backend the API's ContainerRouter is given: one object over
// ContainerService (lifecycle), ContainerIO (attach/logs/exec), ContainerViews
// (ps/inspect/top/stats) and ContainerFs (cp/diff/export/commit).
import type { Duplex, Readable } from 'node:stream';
import type { CreateRequest, HostConfig } from '../container/index.js';
import { conflict } from '../errors/index.js';
import type { ContainerService } from './containers.js';
import type { ContainerFs } from './containers-fs.js';
import type { AttachOptions, ContainerIO, LogsOptions } from './containers-io.js';
import type { ContainerViews, ListFilters } from './containers-view.js';

interface PruneFilters extends ListFilters {
  matchKVList(key: string, labels: Record<string, string> | null | undefined): boolean;
}

export function containerBackend(
  svc: ContainerService,
  io: ContainerIO,
  views: ContainerViews,
  cfs: ContainerFs,
  parseUntil: (v: string) => number,
) {
  return {
    create: (r: Record<string, unknown>) => svc.create(r as unknown as CreateRequest),
    start: (ref: string) => svc.start(ref),
    stop: (ref: string, t?: number) => svc.stop(ref, t),
    kill: (ref: string, signal: string) => svc.kill(ref, signal),
    restart: (ref: string, t?: number) => svc.restart(ref, t),
    pause: (ref: string) => svc.pause(ref),
    unpause: (ref: string) => svc.unpause(ref),
    wait: (ref: string, cond: string, signal: AbortSignal) => svc.wait(ref, cond, signal),
    remove: (ref: string, o: { force?: boolean; volumes?: boolean }) => svc.remove(ref, o),
    rename: (ref: string, name: string) => svc.rename(ref, name),
    update: (ref: string, hc: Record<string, unknown>) => svc.update(ref, hc as HostConfig),
    prune: (f: PruneFilters) => {
      f.validate(['until', 'label', 'label!']);
      const until = f.get('until')[0];
      const notLabels = f.get('label!');
      return svc.prune({
        until: until ? parseUntil(until) : undefined,
        labels: (l) => {
          if (!f.matchKVList('label', l)) return false;
          for (const want of notLabels) {
            const i = want.indexOf('=');
            const m = l ?? {};
            if (i < 0 ? want in m : m[want.slice(0, i)] === want.slice(i + 1)) return false;
          }
          return true;
        },
      });
    },
    list: (o: { all: boolean; limit: number; size: boolean; filters: ListFilters }) => views.list(o),
    inspect: (ref: string, size: boolean) => views.inspect(ref, size, (id) => io.execIds(id)),
    top: (ref: string, ps: string) => views.top(ref, ps),
    stats: (ref: string, o: { stream: boolean; oneShot: boolean }, w: (d: unknown) => void, s: AbortSignal) =>
      views.stats(ref, o, w, s),
    resize: async (ref: string, h: number, w: number) => {
      const c = svc.get(ref);
      const t = svc.tasks.get(c.ID);
      if (!t) throw conflict(`Container ${c.ID} is not running`);
      await t.shim.resize(h, w).catch(() => {});
    },
    attachCheck: (ref: string) => {
      const c = svc.get(ref);
      if (c.State.Paused) throw conflict(`You cannot attach to a paused container, unpause it first`);
      if (c.State.RemovalInProgress || c.State.Dead)
        throw conflict(`You cannot attach to a stopped container, start it first`);
      return { tty: !!c.Config.Tty };
    },
    attach: (ref: string, o: AttachOptions, sock: Duplex) => io.attach(svc.get(ref), o, sock),
    logs: (ref: string, o: LogsOptions, signal: AbortSignal) => io.logs(svc.get(ref), o, signal),
    statPath: (ref: string, p: string) => cfs.statPath(ref, p),
    archive: (ref: string, p: string) => cfs.archive(ref, p),
    extract: (ref: string, p: string, body: Readable, o: { noOverwriteDirNonDir: boolean; copyUIDGID: boolean }) =>
      cfs.extract(ref, p, body, o),
    changes: (ref: string) => cfs.changes(ref),
    export: (ref: string) => cfs.export(ref),
    commit: (o: Parameters<ContainerFs['commit']>[0]) => cfs.commit(o),
    execCreate: (ref: string, config: Record<string, unknown>) =>
      io.execCreate(svc.get(ref), config as Parameters<ContainerIO['execCreate']>[1]),
    execCheck: (id: string) => io.execCheck(id),
    execStart: (id: string, o: { tty?: boolean; consoleSize?: [number, number] | null }, sock?: Duplex) =>
      io.execStart(id, o, sock),
    execResize: (id: string, h: number, w: number) => io.execResize(id, h, w),
    execInspect: (id: string) => io.execInspect(id),
  };
}
