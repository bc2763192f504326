// ContainerStore: every container of `<data-root>/containers`, looked up like
// dockerd's daemon.GetContainer (full ID, then name, then unique ID prefix).
import fs from 'node:fs';
import path from 'node:path';
import { conflict, internal, notFound } from '../errors/index.js';
import { type Logger, nullLogger } from '../log/index.js';
import { Container } from './container.js';
import { NameRegistry } from './names.js';
import type { ContainerJSON, HostConfig } from './types.js';

export const noSuchContainer = (x: string) => notFound(`No such container: ${x}`);

/** A frozen copy of one container for list/filters (moby's view.Snapshot). */
export interface ContainerSnapshot extends ContainerJSON {
  HostConfig: HostConfig;
}

export class ContainerStore {
  private readonly byId = new Map<string, Container>();
  readonly names = new NameRegistry();

  private constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Opens `<dataRoot>/containers` (0710) and loads every container in it. */
  static open(dataRoot: string, opts: { logger?: Logger } = {}): ContainerStore {
    const dir = path.join(dataRoot, 'containers');
    fs.mkdirSync(dir, { recursive: true, mode: 0o710 });
    fs.chmodSync(dir, 0o710);
    const s = new ContainerStore(dir, (opts.logger ?? nullLogger).with({ module: 'container-store' }));
    s.loadAll();
    return s;
  }

  private loadAll(): void {
    for (const e of fs.readdirSync(this.dir, { withFileTypes: true })) {
      if (!e.isDirectory() || !/^[a-f0-9]{64}$/.test(e.name)) continue;
      let c: Container;
      try {
        c = Container.fromDisk(this.dir, e.name);
      } catch (err) {
        this.log.error('failed to load container', { id: e.name, error: (err as Error).message });
        continue;
      }
      this.byId.set(c.ID, c);
      try {
        if (c.Name) this.names.reserve(c.Name, c.ID);
        else c.Name = this.names.generate(c.ID);
      } catch (err) {
        // two containers claim one name on disk: keep the first, rename the other like moby does on restore
        this.log.warn('name conflict while loading; generating a new name', {
          id: c.ID,
          error: (err as Error).message,
        });
        c.Name = this.names.generate(c.ID);
      }
    }
  }

  /** Adds a new container (its name must already be reserved in `names`). */
  add(c: Container): void {
    if (this.byId.has(c.ID)) throw conflict(`Container ${c.ID} already exists`);
    this.byId.set(c.ID, c);
  }

  /** Removes the container from the store and releases its name (files are the caller's). */
  delete(id: string): void {
    this.byId.delete(id);
    this.names.releaseAll(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Full ID, then `/name` or `name`, then a unique ID prefix; dockerd's errors otherwise. */
  get(ref: string): Container {
    const c = this.peek(ref);
    if (!c) throw noSuchContainer(ref);
    return c;
  }

  /** get() without the not-found error (ambiguity still throws). */
  peek(ref: string): Container | undefined {
    if (!ref) throw noSuchContainer(ref);
    const byId = this.byId.get(ref);
    if (byId) return byId;
    const nameId = this.names.get(ref);
    if (nameId) {
      const c = this.byId.get(nameId);
      if (c) return c;
    }
    if (!/^[a-f0-9]+$/.test(ref)) return undefined;
    let found: Container | undefined;
    for (const [id, c] of this.byId) {
      if (!id.startsWith(ref)) continue;
      if (found) throw internal(`Multiple IDs found with provided prefix: ${ref}`);
      found = c;
    }
    return found;
  }

  all(): Container[] {
    return [...this.byId.values()];
  }

  /** Consistent copies of every container, newest first, for `docker ps` and its filters. */
  snapshot(): ContainerSnapshot[] {
    return this.all()
      .map((c) => structuredClone({ ...c.toJSON(), HostConfig: c.HostConfig }) as ContainerSnapshot)
      .sort((a, b) => (a.Created < b.Created ? 1 : a.Created > b.Created ? -1 : 0));
  }
}
