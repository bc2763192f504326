// Restart policies: parsing (`--restart` as the docker CLI does), validation
// (dockerd's validateRestartPolicy texts) and the restart manager's backoff
// (moby restartmanager: 100 ms doubling up to 1 min, reset after 10 s up).
import { invalidArgument } from '../errors/index.js';
import type { RestartPolicy } from './types.js';

/** Parses `no`, `always`, `unless-stopped`, `on-failure[:N]` like the CLI's opts.ParseRestartPolicy. */
export function parseRestartPolicy(policy: string): RestartPolicy {
  const p: RestartPolicy = { Name: '', MaximumRetryCount: 0 };
  if (policy === '') return p;
  const parts = policy.split(':');
  if (parts.length > 2) throw invalidArgument('invalid restart policy format');
  if (parts.length === 2) {
    if (parts[1] === '') throw invalidArgument('maximum retry count cannot be empty');
    if (!/^-?\d+$/.test(parts[1]!)) throw invalidArgument('maximum retry count must be an integer');
    p.MaximumRetryCount = Number(parts[1]);
  }
  p.Name = parts[0]!;
  return p;
}

/** dockerd's validateRestartPolicy. */
export function validateRestartPolicy(p: RestartPolicy | undefined): void {
  if (!p) return;
  switch (p.Name) {
    case 'always':
    case 'unless-stopped':
    case 'no':
      if (p.MaximumRetryCount !== 0)
        throw invalidArgument(`maximum retry count cannot be used with restart policy '${p.Name}'`);
      return;
    case 'on-failure':
      if (p.MaximumRetryCount < 0) throw invalidArgument('maximum retry count cannot be negative');
      return;
    case '':
      return;
    default:
      throw invalidArgument(`invalid restart policy '${p.Name}'`);
  }
}

export const isNone = (p: RestartPolicy | undefined) => !p || p.Name === '' || p.Name === 'no';

export const RESTART_BACKOFF_START_MS = 100;
export const RESTART_BACKOFF_MAX_MS = 60_000;
export const RESTART_RESET_AFTER_MS = 10_000;

export interface RestartDecision {
  restart: boolean;
  /** Delay before the restart (ms). */
  delayMs: number;
}

/**
 * One per container: decides after each exit whether to restart and after how
 * long. The caller counts RestartCount (state.transitions.incrementRestartCount).
 */
export class RestartManager {
  private timeoutMs = 0;
  private restartCount: number;
  private canceled = false;

  constructor(
    public policy: RestartPolicy,
    restartCount = 0,
  ) {
    this.restartCount = restartCount;
  }

  /** moby ShouldRestart: exitCode, manual stop, how long the run lasted. */
  shouldRestart(exitCode: number, hasBeenManuallyStopped: boolean, ranForMs: number): RestartDecision {
    if (isNone(this.policy) || this.canceled) return { restart: false, delayMs: 0 };
    if (ranForMs >= RESTART_RESET_AFTER_MS) this.timeoutMs = 0;
    if (this.timeoutMs === 0) this.timeoutMs = RESTART_BACKOFF_START_MS;
    else if (this.timeoutMs < RESTART_BACKOFF_MAX_MS) this.timeoutMs *= 2;
    if (this.timeoutMs > RESTART_BACKOFF_MAX_MS) this.timeoutMs = RESTART_BACKOFF_MAX_MS;
    let restart = false;
    switch (this.policy.Name) {
      case 'always':
        restart = true;
        break;
      case 'unless-stopped':
        restart = !hasBeenManuallyStopped;
        break;
      case 'on-failure': {
        const max = this.policy.MaximumRetryCount;
        if (max === 0 || this.restartCount < max) restart = exitCode !== 0;
        break;
      }
    }
    if (!restart) return { restart: false, delayMs: 0 };
    this.restartCount++;
    return { restart: true, delayMs: this.timeoutMs };
  }

  /** Stops any future restart (docker stop / rm). */
  cancel(): void {
    this.canceled = true;
  }

  get isCanceled(): boolean {
    return this.canceled;
  }
}
