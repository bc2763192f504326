// The daemon's state: the stores of one data-root opened in moby's order,
// with the services the API routers are given.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { DaemonConfig } from '../config/index.js';
import { ContainerStore } from '../container/index.js';
import { acquirePidfile, atomicWriteFileSync } from '../fsutil/index.js';
import { ImageStore, imagePaths, ReferenceStore, V2MetadataService } from '../image/index.js';
import { LayerStore } from '../layer/index.js';
import { type Logger, nullLogger } from '../log/index.js';
import { VolumeService } from '../volume/index.js';
import { ContainerService } from './containers.js';
import { ContainerFs } from './containers-fs.js';
import { ContainerIO } from './containers-io.js';
import { restoreContainers, shutdownContainers } from './containers-restore.js';
import { ContainerViews } from './containers-view.js';
import { EventsService } from './events.js';
import { ImagesService } from './images.js';
import { BERTH_VERSION, GOARCH, SystemService } from './system.js';
import { VolumesApi } from './volumes.js';

/** moby's modes for the directories of a data-root. */
const ROOT_MODE = 0o711;
const DIRS: [string, number][] = [
  ['containers', 0o710],
  ['image', 0o700],
  ['tmp', 0o700],
];

/**
 * moby prepareTempDir: the previous `<root>/tmp` is renamed away and removed
 * in the background, a fresh one is created.
 */
async function sweepTmp(root: string, log: Logger): Promise<string> {
  const tmp = path.join(root, 'tmp');
  if (fs.existsSync(tmp)) {
    const old = path.join(root, `tmp-old-${Date.now()}`);
    try {
      await fsp.rename(tmp, old);
      void fsp.rm(old, { recursive: true, force: true }).catch((e) => {
        log.warn(`failed to remove ${old}: ${(e as Error).message}`);
      });
    } catch (e) {
      log.warn(`failed to sweep ${tmp}: ${(e as Error).message}`);
    }
  }
  for (const n of fs.readdirSync(root)) {
    if (n.startsWith('tmp-old-') && path.join(root, n) !== tmp) {
      void fsp.rm(path.join(root, n), { recursive: true, force: true }).catch(() => {});
    }
  }
  await fsp.mkdir(tmp, { recursive: true, mode: 0o700 });
  return tmp;
}

function engineId(root: string): string {
  const f = path.join(root, 'engine-id');
  try {
    const v = fs.readFileSync(f, 'utf8').trim();
    if (v) return v;
  } catch {
    // first start
  }
  const id = randomUUID();
  atomicWriteFileSync(f, id, { mode: 0o600 });
  return id;
}

export interface DaemonOptions {
  config: () => DaemonConfig;
  logger?: Logger;
  warnings?: () => string[];
}

/** The pidfile inside a data-root naming the process that has it open. */
export const OWNER_FILE = 'berth-owner.pid';

export class Daemon {
  private unlock: () => void = () => {};
  containers!: ContainerService;
  containerIO!: ContainerIO;
  containerViews!: ContainerViews;
  containerFs!: ContainerFs;
  volumes!: VolumesApi;
  private constructor(
    readonly layers: LayerStore,
    readonly imageStore: ImageStore,
    readonly refs: ReferenceStore,
    readonly distribution: V2MetadataService,
    readonly events: EventsService,
    readonly images: ImagesService,
    readonly system: SystemService,
    readonly tmpRoot: string,
  ) {}

  static async open(opts: DaemonOptions): Promise<Daemon> {
    const cfg = opts.config();
    const log = opts.logger ?? nullLogger;
    const root = cfg.dataRoot;
    await fsp.mkdir(root, { recursive: true, mode: ROOT_MODE });
    await fsp.chmod(root, ROOT_MODE);
    for (const [d, mode] of DIRS) await fsp.mkdir(path.join(root, d), { recursive: true, mode });
    await fsp.mkdir(cfg.execRoot, { recursive: true, mode: 0o700 });
    // one owner per data-root, whatever pidfile the daemon was given (berth storage checks it too)
    const unlock = acquirePidfile(path.join(root, OWNER_FILE));
    let layers: LayerStore;
    let tmpRoot: string;
    try {
      tmpRoot = await sweepTmp(root, log);
      layers = await LayerStore.open(root, { logger: log });
    } catch (e) {
      unlock();
      throw e;
    }
    const p = imagePaths(root, layers.driver.name);
    const imageStore = ImageStore.open(p.imagedb, layers, log.with({ module: 'image-store' }));
    const refs = ReferenceStore.open(p.repositories);
    const distribution = new V2MetadataService(p.distribution);
    const events = new EventsService();
    let containers: ContainerService | undefined;
    const images = new ImagesService({
      containers: { firstUsing: (id, st) => containers?.firstUsing(id, st) },
      layers,
      images: imageStore,
      refs,
      events,
      tmpRoot,
      logger: log,
      dockerVersion: BERTH_VERSION,
      architecture: GOARCH,
    });
    const store = ContainerStore.open(root, { logger: log });
    const volumeService = VolumeService.open(root);
    containers = new ContainerService({
      config: opts.config,
      store,
      layers,
      volumes: volumeService,
      images,
      imageStore,
      refs,
      events,
      logger: log,
    });
    const volumes = new VolumesApi(volumeService, events);
    const system = new SystemService({
      config: opts.config,
      images,
      containers,
      volumes,
      events,
      driverName: layers.driver.name,
      driverStatus: () => layers.driverStatus(),
      engineId: engineId(root),
      warnings: opts.warnings ?? (() => []),
    });
    log.info(`Loaded ${imageStore.length} images and ${layers.list().length} layers`, { root });
    const d = new Daemon(layers, imageStore, refs, distribution, events, images, system, tmpRoot);
    d.unlock = unlock;
    d.containers = containers;
    d.containerIO = new ContainerIO(containers);
    d.containerViews = new ContainerViews(containers);
    d.containerFs = new ContainerFs(containers);
    d.volumes = volumes;
    return d;
  }

  /** Reconnects to running containers and starts those whose restart policy says so (after open). */
  async restore(): Promise<void> {
    await restoreContainers(this.containers);
  }

  /**
   * Unmounts and stops using the stores. NOT ImageStore.close(): that releases
   * the images' layer references, and a layer left without references is
   * deleted — at shutdown that would wipe every layer. Layer references live
   * in memory only, so simply dropping them is what moby does.
   */
  async close(): Promise<void> {
    try {
      await shutdownContainers(this.containers);
      // live-restore: running containers keep their root filesystems mounted
      if (this.containers.tasks.size === 0) await this.layers.close();
    } finally {
      this.unlock();
    }
  }
}
