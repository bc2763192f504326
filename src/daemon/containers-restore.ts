// berthd start and shutdown for containers (moby daemon.restore, daemon.Shutdown):
// reconnect to the shims of running containers (live-restore), settle the
// ones that stopped while berthd was away, re-take volume references, start
// containers whose restart policy says so; at shutdown either leave running
// containers to their shims (live-restore) or stop them within shutdown-timeout.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Container, RestartManager, transitions } from '../container/index.js';
import { ShimClient } from '../runtime/index.js';
import type { ContainerService } from './containers.js';
import type { Task } from './containers-core.js';
import { monitor, stopTask } from './containers-task.js';

export async function restoreContainers(svc: ContainerService): Promise<void> {
  const d = svc.d;
  const toStart: Container[] = [];
  const toRemove: Container[] = [];
  await Promise.all(
    d.store.all().map(async (c) => {
      for (const mp of Object.values(c.MountPoints)) {
        if (mp.Type !== 'volume' || !mp.Name) continue;
        try {
          d.volumes.acquire(mp.Name, c.ID);
        } catch (e) {
          svc.log.warn('volume of a container is missing', { id: c.ID, volume: mp.Name, error: String(e) });
        }
      }
      if (c.State.RemovalInProgress || c.State.Dead) {
        toRemove.push(c);
        return;
      }
      if (!c.State.Running && !c.State.Paused) await discardInterruptedStart(svc, c);
      if (c.State.Running || c.State.Paused) {
        const alive = await reconnect(svc, c);
        if (alive && !svc.cfg.liveRestore) {
          // berthd went away without live-restore (crash): stop what is still running
          await stopTask(svc, c, c.Config.StopTimeout ?? 10).catch(() => {});
        }
      }
      if (!svc.tasks.has(c.ID)) {
        if (c.HostConfig.AutoRemove && c.HasBeenStartedBefore) toRemove.push(c);
        else if (shouldRestart(c)) toStart.push(c);
      }
    }),
  );
  for (const c of toRemove) {
    transitions.resetRemovalInProgress(c);
    await svc.remove(c.ID, { force: true, volumes: true }).catch((e) => {
      svc.log.warn('could not remove container at restore', { id: c.ID, error: String(e) });
    });
  }
  for (const c of toStart) {
    svc.start(c.ID).catch((e) => svc.log.error('failed to start container at boot', { id: c.ID, error: String(e) }));
  }
  const n = d.store.all().length;
  svc.log.info(`Loaded ${n} containers (${svc.tasks.size} running)`);
}

function shouldRestart(c: Container): boolean {
  const p = c.HostConfig.RestartPolicy;
  if (!p || p.Name === '' || p.Name === 'no') return false;
  const ran = Date.parse(c.State.FinishedAt) - Date.parse(c.State.StartedAt);
  return new RestartManager(p, c.RestartCount).shouldRestart(c.State.ExitCode, c.HasBeenManuallyStopped, ran).restart;
}

/** Reconnects to a running container's shim; settles the container when the shim is gone. */
/**
 * berthd died during a start, after the shim had started the process (the
 * shim runs `runtime run`) but before the container was recorded as running:
 * the container is not running as far as anyone was told, so that process and
 * its shim go (`runtime delete --force`), as a crash during dockerd's start
 * leaves nothing running either.
 */
async function discardInterruptedStart(svc: ContainerService, c: Container): Promise<void> {
  const dir = svc.stateDir(c.ID);
  if (!fs.existsSync(path.join(dir, 'shim.sock'))) return;
  const { client } = await ShimClient.reconnect(c.ID, dir);
  if (!client) return;
  svc.log.warn('a start was interrupted: removing the process it left', { id: c.ID });
  await client.delete({ force: true }).catch(() => client.close());
}

async function reconnect(svc: ContainerService, c: Container): Promise<boolean> {
  const dir = svc.stateDir(c.ID);
  const { client, state } = await ShimClient.reconnect(c.ID, dir);
  const runtime = svc.runtimeFor(c.HostConfig.Runtime || svc.cfg.defaultRuntime || 'runc');
  const rw = svc.d.layers.getRWLayer(c.ID);
  if (client) {
    let st: Awaited<ReturnType<ShimClient['state']>> | undefined;
    try {
      st = await client.state();
    } catch {
      st = undefined;
    }
    if (st && st.status !== 'stopped') {
      const md = await rw.metadata();
      const task: Task = {
        shim: client,
        runtime,
        pid: st.pid,
        rootfs: md.MergedDir ?? '',
        startedAtMs: Date.parse(c.State.StartedAt) || Date.now(),
        done: Promise.resolve(),
      };
      svc.tasks.set(c.ID, task);
      if (c.State.Paused) {
        const oci = await runtime.state(c.ID).catch(() => null);
        if (oci && oci.status !== 'paused') transitions.setUnpaused(c);
      }
      monitor(svc, c, task);
      svc.log.info('reattached to a running container', { id: c.ID, pid: st.pid });
      return true;
    }
    // stopped while we were away, shim still holding on: let the monitor settle it
    const task: Task = {
      shim: client,
      runtime,
      pid: 0,
      rootfs: '',
      startedAtMs: Date.parse(c.State.StartedAt) || Date.now(),
      done: Promise.resolve(),
    };
    svc.tasks.set(c.ID, task);
    monitor(svc, c, task);
    await task.done;
    return false;
  }
  await runtime.delete(c.ID, { force: true }).catch(() => {});
  await rw.unmount().catch(() => {});
  transitions.setStopped(c, {
    exitCode: state && state.exitCode >= 0 ? state.exitCode : 255,
    oomKilled: state?.oomKilled,
    exitedAt: state?.finishedAt ? new Date(state.finishedAt) : new Date(),
  });
  c.toDisk();
  svc.event(c, 'die', { exitCode: String(c.State.ExitCode) });
  return false;
}

/** At berthd shutdown: live-restore leaves tasks to their shims; otherwise stop them all. */
export async function shutdownContainers(svc: ContainerService): Promise<void> {
  for (const t of svc.restartTimers.values()) clearTimeout(t);
  svc.restartTimers.clear();
  if (svc.cfg.liveRestore) {
    svc.closing = true;
    for (const t of svc.tasks.values()) {
      if (t.healthTimer) clearTimeout(t.healthTimer);
      t.shim.close();
    }
    return;
  }
  svc.closing = true;
  const limit = svc.cfg.shutdownTimeout >= 0 ? svc.cfg.shutdownTimeout : 15;
  const all = [...svc.tasks.keys()].map((id) => {
    const c = svc.d.store.get(id);
    return stopTask(svc, c, Math.min(c.Config.StopTimeout ?? 10, limit)).catch(() => {});
  });
  await Promise.race([Promise.all(all), sleep((limit + 5) * 1000, undefined, { ref: false })]);
  if (svc.tasks.size === 0 && !svc.cfg.cgroupParent && svc.cgroupDriver() === 'cgroupfs') removeParentCgroups();
}

/** The `/berth` parent cgroups runc created, when no container (of any berthd) is left in them. */
function removeParentCgroups(): void {
  let ctls: string[] = [];
  try {
    ctls = fs.readdirSync('/sys/fs/cgroup');
  } catch {
    return;
  }
  for (const ctl of ['', ...ctls]) {
    try {
      fs.rmdirSync(path.join('/sys/fs/cgroup', ctl, 'berth')); // fails (EBUSY/ENOTEMPTY) while in use
    } catch {
      // in use, or not there
    }
  }
}

/** Whether any container still has a task (live-restore keeps layer mounts for them). */
export function hasLiveTasks(svc: ContainerService): boolean {
  return svc.tasks.size > 0;
}
