// Running a container's task (moby daemon/start.go, monitor.go, health.go):
// mount the RW layer and volumes, build and write the OCI bundle, spawn the
// shim with the container's log settings, start, and monitor the exit (restart
// policy, --rm, health checks). The shim's control connection stays open for
// as long as the task runs: a shim exits when its container stops while
// nobody is connected.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Container,
  effectiveHealth,
  initHealth,
  probeOf,
  RestartManager,
  recordProbe,
  rfc3339Nano,
  transitions,
} from '../container/index.js';
import { conflict, invalidArgument } from '../errors/index.js';
import {
  localLogPath,
  parseSignal,
  resolveLogSettings,
  ShimClient as Shim,
  type ShimClient,
  watchLocalLog,
} from '../runtime/index.js';
import { buildSpec, mountVolumes, unmountVolumes, writeBundle } from '../runtime/spec/index.js';
import type { ContainersCore, Task } from './containers-core.js';

/** Attachers waiting for a container's next start (docker run / start -a attach first). */
export type PendingAttach = (shim: ShimClient) => Promise<void>;
const pending = new WeakMap<ContainersCore, Map<string, Set<PendingAttach>>>();

export function addPendingAttach(core: ContainersCore, id: string, fn: PendingAttach): () => void {
  let m = pending.get(core);
  if (!m) {
    m = new Map();
    pending.set(core, m);
  }
  let s = m.get(id);
  if (!s) {
    s = new Set();
    m.set(id, s);
  }
  s.add(fn);
  return () => s.delete(fn);
}

async function runPendingAttaches(core: ContainersCore, id: string, shim: ShimClient): Promise<void> {
  const s = pending.get(core)?.get(id);
  if (!s?.size) return;
  const fns = [...s];
  s.clear();
  await Promise.allSettled(fns.map((f) => f(shim)));
}

export function restartManager(core: ContainersCore, c: Container): RestartManager {
  let rm = core.restartManagers.get(c.ID);
  if (!rm) {
    rm = new RestartManager(c.HostConfig.RestartPolicy ?? { Name: 'no', MaximumRetryCount: 0 }, c.RestartCount);
    core.restartManagers.set(c.ID, rm);
  }
  return rm;
}

/** moby ResetRestartManager: cancels pending restarts; a manual start resets RestartCount. */
export function resetRestartManager(core: ContainersCore, c: Container, resetCount: boolean): void {
  core.restartManagers.get(c.ID)?.cancel();
  core.restartManagers.delete(c.ID);
  const t = core.restartTimers.get(c.ID);
  if (t) clearTimeout(t);
  core.restartTimers.delete(c.ID);
  if (resetCount) c.RestartCount = 0;
}

/** Starts the task of a created/exited container. Caller holds the container's lock. */
export async function startTask(core: ContainersCore, c: Container): Promise<void> {
  const cfg = core.cfg;
  const hc = c.HostConfig;
  const runtime = core.runtimeFor(hc.Runtime || cfg.defaultRuntime || 'runc');
  const rw = core.d.layers.getRWLayer(c.ID);
  await core.exitCleanups.get(c.ID);
  const undo: Array<() => unknown> = [];
  try {
    for (const mp of Object.values(c.MountPoints)) {
      if (mp.Type === 'bind' && mp.Source && !fs.existsSync(mp.Source))
        throw invalidArgument(
          `error while creating mount source path '${mp.Source}': bind source path does not exist: ${mp.Source}`,
        );
    }
    const rootfs = await rw.mount();
    undo.push(() => rw.unmount());
    const volumePaths = mountVolumes(c, core.d.volumes);
    undo.push(() => unmountVolumes(c, core.d.volumes));
    const { spec } = buildSpec({
      container: c,
      rootfs,
      daemon: core.specDaemon(),
      volumePaths,
      pidOf: (ref) => {
        const o = core.get(ref);
        const t = core.tasks.get(o.ID);
        if (!t) throw conflict(`cannot join namespaces of a non running container ${o.ID}`);
        return t.pid;
      },
    });
    const bundle = writeBundle(cfg.execRoot, c.ID, spec);
    const type = hc.LogConfig?.Type || cfg.logDriver || 'json-file';
    c.LogPath = type === 'json-file' ? c.path(`${c.ID}-json.log`) : '';
    // local: moby's path, <container dir>/local-logs/container.log (not shown as LogPath, like dockerd)
    const driverPath = type === 'local' ? localLogPath(c) : c.LogPath;
    if (type === 'local') fs.mkdirSync(path.dirname(driverPath), { recursive: true, mode: 0o700 });
    const log = resolveLogSettings(type, hc.LogConfig?.Config ?? {}, driverPath, {
      id: c.ID,
      name: c.Name,
      imageId: c.Image,
      imageName: c.Config.Image,
      labels: c.Config.Labels ?? {},
      env: c.Config.Env ?? [],
    });
    // a previous run's runtime state (berthd died before deleting it)
    if (fs.existsSync(path.join(runtime.root, c.ID))) await runtime.delete(c.ID, { force: true }).catch(() => {});
    for (const f of ['shim.sock', 'state.json', 'shim.pid', 'init.pid']) fs.rmSync(`${bundle}/${f}`, { force: true });
    const shim = await Shim.spawn({
      id: c.ID,
      bundle,
      stateDir: bundle,
      runtime,
      tty: !!c.Config.Tty,
      openStdin: !!c.Config.OpenStdin,
      stdinOnce: !!c.Config.StdinOnce,
      log,
      shimPath: core.d.shimPath,
      run: true,
    });
    undo.push(() => shim.delete({ force: true }).catch(() => shim.close()));
    await runPendingAttaches(core, c.ID, shim);
    await shim.start();
    // the init pid came with the shim's spawn reply: no state round trip
    const pid = shim.initPid || (await shim.state()).pid;
    transitions.setRunning(c, pid);
    initHealth(c);
    // not fsynced: after a crash the state is taken from the shim and the runtime
    c.toDisk({ sync: false, stateOnly: true });
    const task: Task = { shim, runtime, pid, rootfs, startedAtMs: Date.now(), done: Promise.resolve() };
    core.tasks.set(c.ID, task);
    monitor(core, c, task);
    core.event(c, 'start');
  } catch (e) {
    for (const f of undo.reverse()) {
      try {
        await f();
      } catch {
        // best effort
      }
    }
    throw e;
  }
}

/** Watches a task until it exits, then applies the exit (also for restored tasks). */
export function monitor(core: ContainersCore, c: Container, task: Task): void {
  startHealth(core, c, task);
  // local log driver: the shim only renames on rotation; berthd gzips the
  // rotated files while the task runs (also a live-restored one) and once more at exit
  const lc = c.HostConfig.LogConfig;
  if (lc?.Type === 'local' && !task.stopLogWatch) {
    try {
      const log = resolveLogSettings('local', lc.Config ?? {}, localLogPath(c), { id: c.ID });
      if (log.compress && log.path) task.stopLogWatch = watchLocalLog(log.path, log.maxFile);
    } catch (e) {
      core.log.warn('local log compression not started', { id: c.ID, error: String(e) });
    }
  }
  task.done = task.shim
    .wait()
    .then(
      (e) => ({ exitCode: e.exitCode, oomKilled: e.oomKilled, exitedAt: new Date(e.finishedAt) }),
      () => ({ exitCode: 255, oomKilled: false, exitedAt: new Date(), lost: true }),
    )
    .then((exit) => {
      if ((exit as { lost?: boolean }).lost && core.closing) return; // berthd is shutting down (live-restore)
      return handleExit(core, c, task, exit);
    })
    .catch((err) => core.log.error('container exit handling failed', { id: c.ID, error: String(err) }));
}

async function handleExit(
  core: ContainersCore,
  c: Container,
  task: Task,
  exit: { exitCode: number; oomKilled: boolean; exitedAt: Date },
): Promise<void> {
  if (task.healthTimer) clearTimeout(task.healthTimer);
  task.healthTimer = undefined;
  try {
    task.stopLogWatch?.();
  } catch (e) {
    core.log.warn('compressing rotated logs failed', { id: c.ID, error: String(e) });
  }
  task.stopLogWatch = undefined;
  core.tasks.delete(c.ID);
  try {
    unmountVolumes(c, core.d.volumes);
  } catch (e) {
    core.log.warn('unmounting volumes failed', { id: c.ID, error: String(e) });
  }
  // The runtime's clean-up (runc delete: a process of its own, ~20-30 ms) and
  // the rootfs unmount run while the exit is reported; a restart, the next
  // start and the removal wait for them (core.exitCleanups).
  const cleanup = (async () => {
    try {
      await task.shim.delete({ force: true });
    } catch {
      task.shim.close();
      await task.runtime.delete(c.ID, { force: true }).catch(() => {});
    }
    await core.d.layers
      .getRWLayer(c.ID)
      .unmount()
      .catch(() => {});
  })().finally(() => {
    if (core.exitCleanups.get(c.ID) === cleanup) core.exitCleanups.delete(c.ID);
  });
  core.exitCleanups.set(c.ID, cleanup);
  try {
    reportExit(core, c, task.startedAtMs, exit);
  } finally {
    await cleanup;
  }
}

function reportExit(
  core: ContainersCore,
  c: Container,
  startedAtMs: number,
  exit: { exitCode: number; oomKilled: boolean; exitedAt: Date },
): void {
  const ranFor = Date.now() - startedAtMs;
  let decision = { restart: false, delayMs: 0 };
  if (!core.closing && !c.State.RemovalInProgress)
    decision = restartManager(core, c).shouldRestart(exit.exitCode, c.HasBeenManuallyStopped, ranFor);
  if (exit.oomKilled) core.event(c, 'oom');
  if (decision.restart) {
    transitions.setRestarting(c, exit);
    transitions.incrementRestartCount(c);
  } else transitions.setStopped(c, exit);
  // an --rm container is about to go: no need to persist its exit
  if (!c.State.RemovalInProgress && (decision.restart || !c.HostConfig.AutoRemove || core.closing)) c.toDisk();
  core.event(c, 'die', { exitCode: String(exit.exitCode) });
  core.bus.emit(`exit:${c.ID}`, { exitCode: exit.exitCode });
  if (decision.restart) {
    const t = setTimeout(() => {
      core.restartTimers.delete(c.ID);
      void core
        .lock(c.ID, async () => {
          if (!c.State.Restarting || !core.d.store.has(c.ID) || core.closing) return;
          try {
            await startTask(core, c);
          } catch (err) {
            transitions.setStopped(c, { exitCode: 128, error: (err as Error).message });
            c.toDisk();
            core.bus.emit(`exit:${c.ID}`, { exitCode: 128, error: (err as Error).message });
          }
        })
        .catch(() => {});
    }, decision.delayMs);
    core.restartTimers.set(c.ID, t);
  } else if (c.HostConfig.AutoRemove && !c.State.RemovalInProgress && !core.closing) {
    core.bus.emit('autoremove', c.ID);
  }
}

/** Signals the container's init (moby killWithSignal); a paused container is resumed for SIGKILL. */
export async function signalTask(core: ContainersCore, c: Container, signal: string | number): Promise<void> {
  const task = core.tasks.get(c.ID);
  if (!task) throw conflict(`Container ${c.ID} is not running`);
  const sig = parseSignal(signal);
  await task.shim.kill(sig);
  if (c.State.Paused && sig === 9) {
    await task.runtime.resume(c.ID).catch(() => {});
  }
}

/** Stops a task: the stop signal, then SIGKILL after `timeoutSec` (negative: wait forever). */
export async function stopTask(core: ContainersCore, c: Container, timeoutSec: number): Promise<void> {
  const task = core.tasks.get(c.ID);
  if (!task) return;
  const sig = c.Config.StopSignal || 'SIGTERM';
  try {
    await signalTask(core, c, sig);
    if (c.State.Paused) await task.runtime.resume(c.ID).catch(() => {});
  } catch (e) {
    core.log.warn('stop signal failed', { id: c.ID, error: String(e) });
  }
  if (timeoutSec < 0) {
    await task.done;
    return;
  }
  const t = sleep(timeoutSec * 1000, 'timeout', { ref: false });
  if ((await Promise.race([task.done.then(() => 'done'), t])) === 'done') return;
  core.log.info(`Container ${c.ID} failed to exit within ${timeoutSec} seconds of signal ${sig} - using the force`);
  await signalTask(core, c, 'SIGKILL').catch(() => {});
  await task.done;
}

// ---------------------------------------------------------------- health

/** Runs a command in the container and returns its exit code and output (health probes). */
export type ProbeRunner = (
  c: Container,
  cmd: string[],
  timeoutMs: number,
) => Promise<{ exitCode: number; output: string }>;
let probeRunner: ProbeRunner | undefined;
export function setProbeRunner(r: ProbeRunner): void {
  probeRunner = r;
}

function startHealth(core: ContainersCore, c: Container, task: Task): void {
  const probe = probeOf(c.Config.Healthcheck);
  if (!probe || !probeRunner) return;
  const h = effectiveHealth(c.Config.Healthcheck ?? {});
  const cmd = probe.shell ? ['/bin/sh', '-c', probe.cmd.join(' ')] : probe.cmd;
  const tick = async () => {
    if (core.tasks.get(c.ID) !== task) return;
    const start = rfc3339Nano();
    let r: { exitCode: number; output: string };
    try {
      r = await probeRunner!(c, cmd, h.timeoutMs);
    } catch (e) {
      r = { exitCode: -1, output: (e as Error).message };
    }
    if (core.tasks.get(c.ID) !== task) return;
    const before = c.State.Health?.Status;
    const status = recordProbe(
      c,
      { Start: start, End: rfc3339Nano(), ExitCode: r.exitCode, Output: r.output },
      task.startedAtMs,
    );
    c.toDisk();
    if (status !== before) core.event(c, `health_status: ${status}`);
    task.healthTimer = setTimeout(() => void tick(), h.intervalMs);
  };
  task.healthTimer = setTimeout(() => void tick(), h.intervalMs);
}
