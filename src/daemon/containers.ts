// ContainerService: the container use cases behind /containers/* (moby
// daemon/create.go, start.go, stop.go, kill.go, restart.go, pause.go,
// wait.go, delete.go, rename.go, update.go, prune.go). I/O (attach, logs,
// exec) is in containers-io.ts, views (ps, inspect, top, stats) in
// containers-view.ts, filesystem use cases (cp, diff, export, commit) in
// containers-fs.ts, restore and shutdown in containers-restore.ts.
import fsp from 'node:fs/promises';
import os from 'node:os';
import {
  type Container,
  ContainerCreator,
  type CreateRequest,
  type HostConfig,
  humanStatus,
  isCgroupV2,
  transitions,
  validateRestartPolicy,
} from '../container/index.js';
import { BerthError, conflict, invalidArgument } from '../errors/index.js';
import type { ContainerUsage } from '../image/index.js';
import type { Digest } from '../oci/index.js';
import { parseSignal } from '../runtime/index.js';
import { type ContainerServiceDeps, ContainersCore, type ExitInfo } from './containers-core.js';
import { resetRestartManager, restartManager, signalTask, startTask, stopTask } from './containers-task.js';

export const DEFAULT_STOP_TIMEOUT = 10;
const WAIT_CONDITIONS = new Set(['not-running', 'next-exit', 'removed']);

export interface WaitResult {
  StatusCode: number;
  Error: { Message: string } | null;
}

export class ContainerService extends ContainersCore implements ContainerUsage {
  private readonly creator: ContainerCreator;

  constructor(d: ContainerServiceDeps) {
    super(d);
    const cfg = d.config();
    this.creator = new ContainerCreator({
      store: d.store,
      volumes: d.volumes,
      layers: d.layers,
      resolveImage: async (ref) => {
        const img = d.images.service.getImage(ref);
        return { id: img.id, config: img.config };
      },
      daemon: {
        defaultShmSize: cfg.defaultShmSize || undefined,
        defaultIpcMode: cfg.defaultIpcMode || undefined,
        defaultCgroupnsMode: cfg.defaultCgroupnsMode || undefined,
        defaultRuntime: cfg.defaultRuntime || undefined,
        logDriver: cfg.logDriver || undefined,
        logOpts: cfg.logOpts,
        noNewPrivileges: cfg.noNewPrivileges,
        dns: cfg.dns,
        dnsSearch: cfg.dnsSearch,
        dnsOpts: cfg.dnsOpts,
        storageDriver: d.layers.driver.name,
      },
    });
    this.bus.on('autoremove', (id: string) => {
      void this.remove(id, { force: true, volumes: true }).catch((e) => {
        if (!(e instanceof BerthError && e.kind === 'not-found'))
          this.log.error('auto-removal failed', { id, error: String(e) });
      });
    });
  }

  // ---- ContainerUsage (docker rmi conflicts) ----------------------------------

  firstUsing(imageId: Digest, state?: 'running' | 'stopped'): string | undefined {
    for (const c of this.d.store.all()) {
      if (c.Image !== imageId) continue;
      if (state === 'running' && !c.State.Running) continue;
      if (state === 'stopped' && c.State.Running) continue;
      return c.ID;
    }
    return undefined;
  }

  counts(): { total: number; running: number; paused: number; stopped: number } {
    let running = 0;
    let paused = 0;
    let total = 0;
    for (const c of this.d.store.all()) {
      total++;
      if (c.State.Paused) paused++;
      else if (c.State.Running) running++;
    }
    return { total, running, paused, stopped: total - running - paused };
  }

  /** The containers part of /system/df (moby: list with size). */
  async diskUsage(): Promise<unknown[]> {
    const out: unknown[] = [];
    for (const c of this.d.store.all()) {
      let size = 0;
      try {
        size = await this.d.layers.getRWLayer(c.ID).size();
      } catch {
        size = 0;
      }
      out.push({
        Id: c.ID,
        Names: [c.Name],
        Image: c.Config.Image,
        ImageID: c.Image,
        Command: c.Args.length ? `${c.Path} ${c.Args.join(' ')}` : c.Path,
        Created: Math.floor(Date.parse(c.Created) / 1000),
        Ports: [],
        SizeRw: size,
        Labels: c.Config.Labels ?? {},
        State: this.status(c),
        Status: humanStatus(c.State),
        HostConfig: { NetworkMode: c.HostConfig.NetworkMode ?? 'none' },
        NetworkSettings: { Networks: c.NetworkSettings.Networks },
        Mounts: [],
      });
    }
    return out;
  }

  // ---- create / start -------------------------------------------------------------

  async create(req: CreateRequest): Promise<{ Id: string; Warnings: string[] }> {
    const hc = req.hostConfig ?? {};
    if (hc.Runtime && !this.knownRuntime(hc.Runtime)) throw invalidArgument(`Unknown runtime specified ${hc.Runtime}`);
    const r = await this.creator.create(req);
    this.event(r.container, 'create');
    return { Id: r.id, Warnings: r.warnings };
  }

  /** POST /containers/{id}/start: not-modified when already running. */
  async start(ref: string): Promise<void> {
    const c = this.get(ref);
    await this.lock(c.ID, async () => {
      if (c.State.Paused) throw conflict('cannot start a paused container, try unpause instead');
      if (c.State.Running && !c.State.Restarting) throw new BerthError('not-modified', 'container already started');
      if (c.State.RemovalInProgress || c.State.Dead)
        throw conflict('container is marked for removal and cannot be started');
      resetRestartManager(this, c, true);
      try {
        await startTask(this, c);
      } catch (e) {
        transitions.setError(c, (e as Error).message, 128);
        if (c.State.Restarting) transitions.setStopped(c, { exitCode: 128, error: (e as Error).message });
        c.toDisk();
        this.event(c, 'die', { exitCode: '128' });
        this.bus.emit(`exit:${c.ID}`, { exitCode: 128, error: (e as Error).message });
        if (c.HostConfig.AutoRemove) this.bus.emit('autoremove', c.ID);
        throw e;
      }
    });
  }

  // ---- stop / kill / restart / pause -------------------------------------------

  private stopTimeout(c: Container, t?: number): number {
    if (t !== undefined && !Number.isNaN(t)) return t;
    return c.Config.StopTimeout ?? DEFAULT_STOP_TIMEOUT;
  }

  /** Not-modified when the container is not running. */
  async stop(ref: string, t?: number): Promise<void> {
    const c = this.get(ref);
    await this.lock(c.ID, async () => {
      if (c.State.Restarting && !this.tasks.has(c.ID)) {
        resetRestartManager(this, c, false);
        transitions.markManuallyStopped(c);
        transitions.setStopped(c, { exitCode: c.State.ExitCode });
        c.toDisk();
        this.bus.emit(`exit:${c.ID}`, { exitCode: c.State.ExitCode });
        return;
      }
      if (!this.tasks.has(c.ID)) throw new BerthError('not-modified', 'container already stopped');
      transitions.markManuallyStopped(c);
      restartManager(this, c).cancel();
      c.toDisk();
      await stopTask(this, c, this.stopTimeout(c, t));
      this.event(c, 'stop');
    });
  }

  async kill(ref: string, signal = 'SIGKILL'): Promise<void> {
    const c = this.get(ref);
    let sig: number;
    try {
      sig = parseSignal(signal || 'SIGKILL');
    } catch {
      throw invalidArgument(`Invalid signal: ${signal}`);
    }
    if (!this.tasks.has(c.ID) || c.State.Restarting) throw conflict(`Container ${c.ID} is not running`);
    if (sig === 9) restartManager(this, c); // restart policy still applies after docker kill (moby)
    await signalTask(this, c, sig);
    this.event(c, 'kill', { signal: String(sig) });
  }

  async restart(ref: string, t?: number): Promise<void> {
    const c = this.get(ref);
    if (this.tasks.has(c.ID) || c.State.Restarting) {
      try {
        await this.stop(c.ID, t);
      } catch (e) {
        if (!(e instanceof BerthError && e.kind === 'not-modified')) throw e;
      }
    }
    await this.start(c.ID);
    this.event(c, 'restart');
  }

  async pause(ref: string): Promise<void> {
    const c = this.get(ref);
    await this.lock(c.ID, async () => {
      const task = this.tasks.get(c.ID);
      if (!task || c.State.Restarting) throw conflict(`Container ${c.ID} is not running`);
      if (c.State.Paused) throw conflict(`Container ${c.ID} is already paused`);
      await task.runtime.pause(c.ID);
      transitions.setPaused(c);
      c.toDisk();
      this.event(c, 'pause');
    });
  }

  async unpause(ref: string): Promise<void> {
    const c = this.get(ref);
    await this.lock(c.ID, async () => {
      const task = this.tasks.get(c.ID);
      if (!task || !c.State.Paused) throw conflict(`Container ${c.ID} is not paused`);
      await task.runtime.resume(c.ID);
      transitions.setUnpaused(c);
      c.toDisk();
      this.event(c, 'unpause');
    });
  }

  // ---- wait -----------------------------------------------------------------------

  /**
   * Registers a wait synchronously (the router then sends the headers, as
   * dockerd does before `docker run` starts the container) and returns its result.
   */
  wait(ref: string, condition: string, signal?: AbortSignal): Promise<WaitResult> {
    const cond = condition || 'not-running';
    if (!WAIT_CONDITIONS.has(cond)) throw invalidArgument(`invalid condition: "${cond}"`);
    const c = this.get(ref);
    const ok = (e: ExitInfo): WaitResult => ({
      StatusCode: e.exitCode,
      Error: e.error ? { Message: e.error } : null,
    });
    if (cond === 'not-running' && !c.State.Running) return Promise.resolve(ok({ exitCode: c.State.ExitCode }));
    if (cond === 'removed') {
      return new Promise((resolve, reject) => {
        const onRemoved = (code: number) => {
          cleanup();
          resolve(ok({ exitCode: code }));
        };
        const onAbort = () => {
          cleanup();
          reject(new Error('aborted'));
        };
        const cleanup = () => {
          this.bus.off(`removed:${c.ID}`, onRemoved);
          signal?.removeEventListener('abort', onAbort);
        };
        this.bus.on(`removed:${c.ID}`, onRemoved);
        signal?.addEventListener('abort', onAbort);
      });
    }
    return this.nextExit(c.ID, signal).then(ok);
  }

  // ---- remove / rename / update / prune ---------------------------------------

  async remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const c = this.get(ref);
    await this.lock(c.ID, async () => {
      if (!this.d.store.has(c.ID)) return;
      if (c.State.RemovalInProgress || c.State.Dead)
        throw conflict(`removal of container ${c.Name.replace(/^\//, '')} is already in progress`);
      if (c.State.Running) {
        if (!opts.force) {
          const state = this.status(c);
          const proc = 'Stop the container before attempting removal or force remove';
          throw conflict(
            `You cannot remove a ${state} container ${c.ID}. ${state === 'paused' ? `Unpause and then ${proc.toLowerCase()}` : proc}`,
          );
        }
        resetRestartManager(this, c, false);
        const task = this.tasks.get(c.ID);
        if (task) {
          transitions.setRemovalInProgress(c);
          await signalTask(this, c, 'SIGKILL').catch(() => {});
          await task.done;
          transitions.resetRemovalInProgress(c);
        } else transitions.setStopped(c, { exitCode: c.State.ExitCode });
      }
      resetRestartManager(this, c, false);
      transitions.setRemovalInProgress(c);
      await this.cleanupContainer(c, !!opts.volumes);
    });
  }

  /**
   * Forgets the container (the API no longer shows it, `wait removed` returns),
   * then deletes its files and its RW layer (moby cleanupContainer).
   */
  private async cleanupContainer(c: Container, removeVolumes: boolean): Promise<void> {
    this.d.store.delete(c.ID);
    this.restartManagers.delete(c.ID);
    for (const mp of Object.values(c.MountPoints)) {
      if (mp.Type !== 'volume' || !mp.Name) continue;
      this.d.volumes.release(mp.Name, c.ID);
      if (!removeVolumes || mp.Spec?.Source) continue;
      try {
        this.d.volumes.remove(mp.Name);
        this.d.events.log('volume', 'destroy', { ID: mp.Name, Attributes: { driver: 'local' } });
      } catch {
        // in use elsewhere: kept (moby ignores this error)
      }
    }
    transitions.setDead(c);
    this.event(c, 'destroy');
    this.bus.emit(`removed:${c.ID}`, c.State.ExitCode);
    await this.exitCleanups.get(c.ID);
    try {
      await this.d.layers.releaseRWLayer(c.ID);
    } catch (e) {
      this.log.error('unable to remove filesystem', { id: c.ID, error: (e as Error).message });
    }
    await Promise.all([
      fsp.rm(c.root, { recursive: true, force: true }),
      fsp.rm(this.stateDir(c.ID), { recursive: true, force: true }),
    ]);
  }

  async rename(ref: string, newName: string): Promise<void> {
    if (!newName) throw invalidArgument('Neither old nor new names may be empty');
    const c = this.get(ref);
    const oldName = c.Name;
    const want = newName.startsWith('/') ? newName : `/${newName}`;
    if (want === oldName) throw invalidArgument('Renaming a container with the same name as its current name');
    const n = this.d.store.names.rename(oldName, newName, c.ID);
    c.Name = n;
    c.toDisk();
    this.event(c, 'rename', { oldName });
  }

  /** POST /containers/{id}/update: resources and the restart policy (moby ContainerUpdate). */
  async update(ref: string, hc: HostConfig): Promise<{ Warnings: string[] }> {
    const c = this.get(ref);
    return this.lock(c.ID, async () => {
      const warnings: string[] = [];
      if (hc.RestartPolicy?.Name) {
        validateRestartPolicy(hc.RestartPolicy);
        if (c.HostConfig.AutoRemove && hc.RestartPolicy.Name !== 'no')
          throw invalidArgument(
            'Cannot update container: Restart policy cannot be updated because AutoRemove is enabled for the container',
          );
      }
      const next: HostConfig = { ...c.HostConfig };
      const keys: Array<keyof HostConfig> = [
        'CpuShares',
        'Memory',
        'NanoCpus',
        'CpuPeriod',
        'CpuQuota',
        'CpusetCpus',
        'CpusetMems',
        'MemoryReservation',
        'MemorySwap',
        'KernelMemory',
        'BlkioWeight',
        'PidsLimit',
      ];
      for (const k of keys) {
        const v = hc[k];
        if (v !== undefined && v !== null && v !== 0 && v !== '') (next as Record<string, unknown>)[k] = v;
      }
      if (hc.Memory && !hc.MemorySwap && c.HostConfig.MemorySwap && c.HostConfig.MemorySwap > 0) {
        if (hc.Memory > c.HostConfig.MemorySwap)
          throw invalidArgument(
            'Cannot update container: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time',
          );
      }
      if (hc.NanoCpus) {
        const ncpu = os.cpus().length;
        if (hc.NanoCpus > ncpu * 1e9)
          throw invalidArgument(`Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`);
      }
      if (hc.RestartPolicy?.Name) {
        next.RestartPolicy = hc.RestartPolicy;
        const rm = this.restartManagers.get(c.ID);
        if (rm) rm.policy = hc.RestartPolicy;
      }
      const task = this.tasks.get(c.ID);
      if (task) {
        await task.runtime.update(c.ID, ociResources(next)).catch((e) => {
          throw invalidArgument(`Cannot update container ${c.ID}: ${(e as Error).message}`);
        });
      }
      c.HostConfig = next;
      c.toDisk();
      this.event(c, 'update');
      return { Warnings: warnings };
    });
  }

  async prune(filters: {
    until?: number;
    labels: (l: Record<string, string> | null | undefined) => boolean;
  }): Promise<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let space = 0;
    for (const c of this.d.store.all()) {
      if (c.State.Running || c.State.Paused || c.State.RemovalInProgress) continue;
      if (filters.until !== undefined && Date.parse(c.Created) / 1000 >= filters.until) continue;
      if (!filters.labels(c.Config.Labels)) continue;
      let size = 0;
      try {
        size = await this.d.layers.getRWLayer(c.ID).size();
      } catch {
        size = 0;
      }
      try {
        await this.remove(c.ID, {});
        deleted.push(c.ID);
        space += size;
      } catch (e) {
        this.log.warn('prune: could not remove container', { id: c.ID, error: String(e) });
      }
    }
    this.d.events.log('container', 'prune', { ID: '', Attributes: { reclaimed: String(space) } });
    return { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: space };
  }
}

/** HostConfig resources → OCI LinuxResources for `runtime update`. */
export function ociResources(hc: HostConfig): Record<string, unknown> {
  const cpu: Record<string, unknown> = {};
  if (hc.CpuShares) cpu.shares = hc.CpuShares;
  if (hc.NanoCpus) {
    cpu.period = 100000;
    cpu.quota = Math.round((hc.NanoCpus * 100000) / 1e9);
  } else {
    if (hc.CpuPeriod) cpu.period = hc.CpuPeriod;
    if (hc.CpuQuota) cpu.quota = hc.CpuQuota;
  }
  if (hc.CpusetCpus) cpu.cpus = hc.CpusetCpus;
  if (hc.CpusetMems) cpu.mems = hc.CpusetMems;
  const memory: Record<string, unknown> = {};
  if (hc.Memory) memory.limit = hc.Memory;
  if (hc.MemoryReservation) memory.reservation = hc.MemoryReservation;
  if (hc.MemorySwap && !isCgroupV2()) memory.swap = hc.MemorySwap;
  const out: Record<string, unknown> = { memory, cpu };
  if (hc.PidsLimit) out.pids = { limit: hc.PidsLimit };
  if (hc.BlkioWeight) out.blockIO = { weight: hc.BlkioWeight };
  return out;
}
