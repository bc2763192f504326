// The container state machine. It is the only code that mutates Container.State:
//   created ──start──▶ running ──pause──▶ paused ──unpause──▶ running
//   running ──exit──▶ exited (or restarting while the restart manager waits)
//   restarting ──start──▶ running;  any ──remove──▶ removal-in-progress ──▶ dead
import { conflict } from '../errors/index.js';
import type { Container } from './container.js';
import type { HealthStatus, State } from './types.js';
import { ZERO_TIME } from './types.js';

export type Status = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

/** Go's time.Format(RFC3339Nano) in UTC for a Date plus extra nanoseconds. */
export function rfc3339Nano(d: Date = new Date(), extraNs = Number(process.hrtime.bigint() % 1_000_000n)): string {
  const frac = `${String(d.getUTCMilliseconds()).padStart(3, '0')}${String(extraNs).padStart(6, '0')}`.replace(
    /0+$/,
    '',
  );
  return `${d.toISOString().slice(0, 19)}${frac ? `.${frac}` : ''}Z`;
}

/** The `Status` string of inspect (moby State.StateString). */
export function statusOf(s: State): Status {
  if (s.Running) {
    if (s.Paused) return 'paused';
    if (s.Restarting) return 'restarting';
    return 'running';
  }
  if (s.RemovalInProgress) return 'removing';
  if (s.Dead) return 'dead';
  if (s.StartedAt === ZERO_TIME) return 'created';
  return 'exited';
}

/** `docker ps` Status column (moby State.String), e.g. "Up 3 seconds", "Exited (0) 2 minutes ago". */
export function humanStatus(s: State, now = Date.now()): string {
  const ago = (t: string) => humanDuration(now - Date.parse(t));
  if (s.Running) {
    if (s.Paused) return `Up ${ago(s.StartedAt)} (Paused)`;
    if (s.Restarting) return `Restarting (${s.ExitCode}) ${ago(s.FinishedAt)} ago`;
    const h =
      s.Health && s.Health.Status !== 'none'
        ? ` (${s.Health.Status === 'starting' ? 'health: starting' : s.Health.Status})`
        : '';
    return `Up ${ago(s.StartedAt)}${h}`;
  }
  if (s.RemovalInProgress) return 'Removal In Progress';
  if (s.Dead) return 'Dead';
  if (s.StartedAt === ZERO_TIME) return 'Created';
  if (s.FinishedAt === ZERO_TIME) return '';
  return `Exited (${s.ExitCode}) ${ago(s.FinishedAt)} ago`;
}

/** go-units HumanDuration. */
export function humanDuration(ms: number): string {
  const sec = Math.round(ms / 1000);
  if (sec < 1) return 'Less than a second';
  if (sec === 1) return '1 second';
  if (sec < 60) return `${sec} seconds`;
  const min = Math.round(ms / 60000);
  if (min === 1) return 'About a minute';
  if (min < 60) return `${min} minutes`;
  const h = Math.round(ms / 3_600_000);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(h / 24 / 365)} years`;
}

export interface ExitStatus {
  exitCode: number;
  oomKilled?: boolean;
  /** Time of exit (default now). */
  exitedAt?: Date;
  error?: string;
}

/** Transitions. Each throws a conflict error when the container is in the wrong state. */
export const transitions = {
  /** The runtime started the task: created/exited/restarting → running. */
  setRunning(c: Container, pid: number, initial = true): void {
    const s = c.State;
    if (s.Running && !s.Restarting) throw conflict(`Container ${c.ID} is already running`);
    if (s.Dead || s.RemovalInProgress) throw conflict(`Container ${c.ID} is marked for removal and cannot be started.`);
    s.Running = true;
    s.Paused = false;
    s.Restarting = false;
    s.ExitCode = 0;
    s.Pid = pid;
    s.Error = '';
    s.OOMKilled = false;
    if (initial) s.StartedAt = rfc3339Nano();
    c.HasBeenStartedBefore = true;
    c.HasBeenManuallyStopped = false;
    if (s.Health) resetHealth(s);
  },

  /** The task exited: running/paused → exited. */
  setStopped(c: Container, e: ExitStatus): void {
    const s = c.State;
    s.Running = false;
    s.Paused = false;
    s.Restarting = false;
    s.Pid = 0;
    s.FinishedAt = rfc3339Nano(e.exitedAt ?? new Date());
    s.ExitCode = e.exitCode;
    s.OOMKilled = !!e.oomKilled;
    if (e.error !== undefined) s.Error = e.error;
    if (s.Health) s.Health.Status = 'unhealthy';
  },

  /** Exited, but the restart manager will start it again: running → restarting. */
  setRestarting(c: Container, e: ExitStatus): void {
    const s = c.State;
    // moby keeps Running=true while restarting so that `docker ps` shows it
    s.Running = true;
    s.Restarting = true;
    s.Paused = false;
    s.Pid = 0;
    s.FinishedAt = rfc3339Nano(e.exitedAt ?? new Date());
    s.ExitCode = e.exitCode;
    s.OOMKilled = !!e.oomKilled;
  },

  setPaused(c: Container): void {
    const s = c.State;
    if (!s.Running || s.Restarting) throw conflict(`Container ${c.ID} is not running`);
    if (s.Paused) throw conflict(`Container ${c.ID} is already paused`);
    s.Paused = true;
  },

  setUnpaused(c: Container): void {
    const s = c.State;
    if (!s.Paused) throw conflict(`Container ${c.ID} is not paused`);
    s.Paused = false;
  },

  /** Start failed: records the error (moby SetError), the container stays created/exited. */
  setError(c: Container, err: string, exitCode?: number): void {
    c.State.Error = err;
    if (exitCode !== undefined) c.State.ExitCode = exitCode;
  },

  setRemovalInProgress(c: Container): void {
    if (c.State.RemovalInProgress) throw conflict(`removal of container ${c.ID} is already in progress`);
    c.State.RemovalInProgress = true;
  },

  resetRemovalInProgress(c: Container): void {
    c.State.RemovalInProgress = false;
  },

  setDead(c: Container): void {
    c.State.Dead = true;
  },

  markManuallyStopped(c: Container): void {
    c.HasBeenManuallyStopped = true;
  },

  incrementRestartCount(c: Container): void {
    c.RestartCount++;
  },

  setHealth(
    c: Container,
    status: HealthStatus,
    failingStreak: number,
    log: State['Health'] extends infer H ? (H extends { Log: infer L } ? L : never) : never,
  ): void {
    c.State.Health = { Status: status, FailingStreak: failingStreak, Log: log };
  },
};

function resetHealth(s: State): void {
  s.Health = { Status: 'starting', FailingStreak: 0, Log: s.Health?.Log ?? null };
}

/** Whether a container's state counts as running for `docker ps` (no -a). */
export function isRunning(c: Container): boolean {
  return c.State.Running;
}
