// Shared state of the container service: the stores it composes, the live
// tasks (one shim control connection per running container), per-container
// locks, the runtimes, and container events. containers.ts builds the API's
// use cases on it; containers-task.ts runs tasks.
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { DaemonConfig } from '../config/index.js';
import { type Container, type ContainerStore, type RestartManager, statusOf } from '../container/index.js';
import { invalidArgument } from '../errors/index.js';
import type { ImageStore, ReferenceStore } from '../image/index.js';
import type { LayerStore } from '../layer/index.js';
import { type Logger, nullLogger } from '../log/index.js';
import { OciRuntime, resolveRuntimePath, type ShimClient } from '../runtime/index.js';
import type { SpecDaemonConfig } from '../runtime/spec/index.js';
import type { VolumeService } from '../volume/index.js';
import type { EventsService } from './events.js';
import type { ImagesService } from './images.js';

export interface ContainerServiceDeps {
  config: () => DaemonConfig;
  store: ContainerStore;
  layers: LayerStore;
  volumes: VolumeService;
  images: ImagesService;
  imageStore: ImageStore;
  refs: ReferenceStore;
  events: EventsService;
  logger?: Logger;
  /** Where the shim binary is (tests). */
  shimPath?: string;
}

/** A running container's task: the shim's control connection and what start mounted. */
export interface Task {
  shim: ShimClient;
  runtime: OciRuntime;
  pid: number;
  /** The mounted root filesystem (host path). */
  rootfs: string;
  startedAtMs: number;
  /** Set while stop/kill/rm wants the exit (no restart decision by the monitor then). */
  healthTimer?: NodeJS.Timeout;
  /** Resolves after the monitor has handled the exit. */
  done: Promise<void>;
  /** local log driver with compress: stops gzipping rotated files (and compresses once more). */
  stopLogWatch?: () => void;
}

export interface ExitInfo {
  exitCode: number;
  error?: string;
}

export class ContainersCore {
  readonly tasks = new Map<string, Task>();
  readonly restartManagers = new Map<string, RestartManager>();
  /** Pending restart timers (restart policy backoff). */
  readonly restartTimers = new Map<string, NodeJS.Timeout>();
  /**
   * Runtime clean-up of an exited task (runtime delete, unmounts) still in
   * progress: the exit is reported before it; the next start and the removal
   * of the container wait for it.
   */
  readonly exitCleanups = new Map<string, Promise<void>>();
  /** Emits `exit:<id>` (ExitInfo), `removed:<id>`, `started:<id>`. */
  readonly bus = new EventEmitter();
  readonly log: Logger;
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly runtimes = new Map<string, OciRuntime>();
  closing = false;

  constructor(readonly d: ContainerServiceDeps) {
    this.bus.setMaxListeners(0);
    this.log = (d.logger ?? nullLogger).with({ module: 'containers' });
  }

  get cfg(): DaemonConfig {
    return this.d.config();
  }

  /** Serialises state changes of one container (start/stop/rm/restart …). */
  async lock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  get(ref: string): Container {
    return this.d.store.get(ref);
  }

  /** The directory of the shim, bundle and runtime state (`<exec-root>/containers/<id>`). */
  stateDir(id: string): string {
    return path.join(this.cfg.execRoot, 'containers', id);
  }

  /** moby LogContainerEventWithAttributes: image, name, labels, plus extra attributes. */
  event(c: Container, action: string, extra: Record<string, string> = {}): void {
    const attrs: Record<string, string> = { ...(c.Config.Labels ?? {}) };
    attrs.image = c.Config.Image ?? '';
    attrs.name = c.Name.replace(/^\//, '');
    Object.assign(attrs, extra);
    this.d.events.log('container', action, { ID: c.ID, Attributes: attrs });
  }

  cgroupDriver(): 'cgroupfs' | 'systemd' {
    for (const o of this.cfg.execOpts) {
      const m = /^native\.cgroupdriver=(.*)$/.exec(o);
      if (m) return m[1] === 'systemd' ? 'systemd' : 'cgroupfs';
    }
    return 'cgroupfs';
  }

  specDaemon(): SpecDaemonConfig {
    const cfg = this.cfg;
    return {
      cgroupParent: cfg.cgroupParent || undefined,
      cgroupDriver: this.cgroupDriver(),
      defaultUlimits: cfg.defaultUlimits,
      seccompProfile: cfg.seccompProfile,
      init: cfg.init,
      initPath: cfg.initPath || undefined,
    };
  }

  /** Names of the runtimes berthd knows: runc plus daemon.json `runtimes`. */
  knownRuntime(name: string): boolean {
    return name === 'runc' || name in this.cfg.runtimes;
  }

  runtimeFor(name: string): OciRuntime {
    let r = this.runtimes.get(name);
    if (r) return r;
    const conf = this.cfg.runtimes[name];
    if (!conf && name !== 'runc') throw invalidArgument(`Unknown runtime specified ${name}`);
    r = new OciRuntime({
      name,
      path: resolveRuntimePath(conf?.path || name),
      runtimeArgs: conf?.runtimeArgs,
      root: path.join(this.cfg.execRoot, `runtime-${name}`),
      systemdCgroup: this.cgroupDriver() === 'systemd',
    });
    this.runtimes.set(name, r);
    return r;
  }

  isRunning(c: Container): boolean {
    return c.State.Running && !c.State.Restarting;
  }

  status(c: Container): string {
    return statusOf(c.State);
  }

  /** Waits for the next exit of `id` (or its removal). */
  nextExit(id: string, signal?: AbortSignal): Promise<ExitInfo> {
    return new Promise((resolve, reject) => {
      const onExit = (e: ExitInfo) => {
        cleanup();
        resolve(e);
      };
      const onAbort = () => {
        cleanup();
        reject(new Error('aborted'));
      };
      const cleanup = () => {
        this.bus.off(`exit:${id}`, onExit);
        signal?.removeEventListener('abort', onAbort);
      };
      this.bus.on(`exit:${id}`, onExit);
      signal?.addEventListener('abort', onAbort);
    });
  }
}
