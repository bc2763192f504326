// Health checks: the config merge (image HEALTHCHECK + --health-* flags),
// the defaults and the state rules of moby's daemon/health.go.
import { invalidArgument } from '../errors/index.js';
import type { HealthConfig } from '../oci/index.js';
import type { Container } from './container.js';
import { transitions } from './state.js';
import type { HealthcheckResult, HealthStatus } from './types.js';

export const HEALTH_DEFAULT_INTERVAL_MS = 30_000;
export const HEALTH_DEFAULT_TIMEOUT_MS = 30_000;
export const HEALTH_DEFAULT_START_PERIOD_MS = 0;
export const HEALTH_DEFAULT_RETRIES = 3;
export const HEALTH_MAX_LOG = 5;
export const HEALTH_MAX_OUTPUT = 4096;
/** containertypes.MinimumDuration: 1 ms, in nanoseconds. */
export const MIN_DURATION_NS = 1_000_000;

/** Merges the user's health config over the image's (moby daemon/commit.go merge). */
export function mergeHealthcheck(
  user: HealthConfig | null | undefined,
  image: HealthConfig | null | undefined,
): HealthConfig | undefined {
  if (!user) return image ?? undefined;
  if (!image) return user;
  const h = { ...user };
  if (!h.Test?.length) h.Test = image.Test;
  if (!h.Interval) h.Interval = image.Interval;
  if (!h.Timeout) h.Timeout = image.Timeout;
  if (!h.StartPeriod) h.StartPeriod = image.StartPeriod;
  if (!h.Retries) h.Retries = image.Retries;
  return h;
}

/** dockerd's validateHealthCheck. */
export function validateHealthcheck(h: HealthConfig | null | undefined): void {
  if (!h) return;
  if (h.Interval && h.Interval < MIN_DURATION_NS)
    throw invalidArgument('Interval in Healthcheck cannot be less than 1ms');
  if (h.Timeout && h.Timeout < MIN_DURATION_NS) throw invalidArgument('Timeout in Healthcheck cannot be less than 1ms');
  if ((h.Retries ?? 0) < 0) throw invalidArgument('Retries in Healthcheck cannot be negative');
  if (h.StartPeriod && h.StartPeriod < MIN_DURATION_NS)
    throw invalidArgument('StartPeriod in Healthcheck cannot be less than 1ms');
}

/** The probe to run, or undefined when there is none (no config, empty Test, or NONE). */
export function probeOf(h: HealthConfig | null | undefined): { shell: boolean; cmd: string[] } | undefined {
  const t = h?.Test;
  if (!t?.length) return undefined;
  switch (t[0]) {
    case 'NONE':
      return undefined;
    case 'CMD':
      return { shell: false, cmd: t.slice(1) };
    case 'CMD-SHELL':
      return { shell: true, cmd: t.slice(1) };
    default:
      return undefined;
  }
}

export interface EffectiveHealth {
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
  retries: number;
}

export function effectiveHealth(h: HealthConfig): EffectiveHealth {
  const ms = (ns: number | undefined, d: number) => (ns && ns > 0 ? ns / 1e6 : d);
  return {
    intervalMs: ms(h.Interval, HEALTH_DEFAULT_INTERVAL_MS),
    timeoutMs: ms(h.Timeout, HEALTH_DEFAULT_TIMEOUT_MS),
    startPeriodMs: ms(h.StartPeriod, HEALTH_DEFAULT_START_PERIOD_MS),
    retries: h.Retries && h.Retries > 0 ? h.Retries : HEALTH_DEFAULT_RETRIES,
  };
}

/** On start of a container that has a probe: Health = {starting, 0, null}. */
export function initHealth(c: Container): void {
  if (!probeOf(c.Config.Healthcheck)) {
    if (c.State.Health) transitions.setHealth(c, 'none', 0, null);
    return;
  }
  transitions.setHealth(c, 'starting', 0, c.State.Health?.Log ?? null);
}

/**
 * Records one probe result (moby handleProbeResult): exit 0 → healthy and the
 * streak resets; otherwise the streak grows (not during the start period while
 * still starting) and reaches unhealthy at `retries`. Keeps the last 5 results.
 */
export function recordProbe(c: Container, r: HealthcheckResult, startedAtMs: number): HealthStatus {
  const cfg = effectiveHealth(c.Config.Healthcheck ?? {});
  const cur = c.State.Health ?? { Status: 'starting' as HealthStatus, FailingStreak: 0, Log: null };
  const log = [...(cur.Log ?? []), { ...r, Output: r.Output.slice(0, HEALTH_MAX_OUTPUT) }].slice(-HEALTH_MAX_LOG);
  let status = cur.Status;
  let streak = cur.FailingStreak;
  if (r.ExitCode === 0) {
    streak = 0;
    status = 'healthy';
  } else {
    let count = true;
    if (cur.Status === 'starting' && Date.parse(r.Start) - startedAtMs < cfg.startPeriodMs) count = false;
    if (count) {
      streak++;
      if (streak >= cfg.retries) status = 'unhealthy';
    }
  }
  transitions.setHealth(c, status, streak, log);
  return status;
}
