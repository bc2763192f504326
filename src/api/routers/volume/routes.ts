// /volumes/* (moby router/volume): create, list, inspect, remove, prune.
import { Filters } from '../../filters.js';
import { boolValue, readJson, writeJson } from '../../httputils.js';
import type { ApiContext, Route, Router } from '../../server.js';

export interface VolumeBackend {
  create(o: {
    Name?: string;
    Driver?: string;
    DriverOpts?: Record<string, string> | null;
    Labels?: Record<string, string> | null;
  }): unknown;
  list(filters: Filters): unknown;
  inspect(name: string): unknown;
  remove(name: string, force: boolean): void;
  prune(filters: Filters): unknown;
}

export class VolumeRouter implements Router {
  readonly routes: Route[];

  constructor(private readonly b: VolumeBackend) {
    this.routes = [
      { method: 'GET', path: '/volumes', handler: (c) => writeJson(c.res, 200, this.b.list(filters(c))) },
      {
        method: 'GET',
        path: '/volumes/{name:.*}',
        handler: (c) => writeJson(c.res, 200, this.b.inspect(c.params.name!)),
      },
      { method: 'POST', path: '/volumes/create', handler: (c) => this.create(c) },
      { method: 'POST', path: '/volumes/prune', handler: (c) => writeJson(c.res, 200, this.b.prune(filters(c))) },
      {
        method: 'DELETE',
        path: '/volumes/{name:.*}',
        handler: (c) => {
          this.b.remove(c.params.name!, boolValue(c.query, 'force'));
          c.res.writeHead(204).end();
        },
      },
    ];
  }

  private async create(c: ApiContext): Promise<void> {
    const body = (await readJson<Record<string, unknown>>(c.req)) ?? {};
    writeJson(c.res, 201, this.b.create(body as Parameters<VolumeBackend['create']>[0]));
  }
}

function filters(c: ApiContext): Filters {
  return Filters.parse(c.query.get('filters'));
}
