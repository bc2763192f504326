// The image config merged under the user's (moby daemon/commit.go merge) and
// the entrypoint/cmd rule for the process (daemon getEntrypointAndArgs).
import { invalidArgument } from '../errors/index.js';
import type { ContainerConfig as ImageContainerConfig } from '../oci/index.js';
import { mergeHealthcheck } from './health.js';
import type { ContainerConfig } from './types.js';

const envKey = (e: string) => e.split('=')[0];

/** Returns a new config: the user's values, completed from the image's. */
export function mergeImageConfig(user: ContainerConfig, image: ImageContainerConfig | undefined): ContainerConfig {
  const u: ContainerConfig = structuredClone(user);
  if (!image) return u;
  if (!u.User) u.User = image.User ?? '';
  if (image.ExposedPorts && Object.keys(image.ExposedPorts).length) {
    u.ExposedPorts = { ...image.ExposedPorts, ...(u.ExposedPorts ?? {}) };
  }
  if (!u.Env?.length) u.Env = image.Env ? [...image.Env] : (u.Env ?? null);
  else {
    for (const ie of image.Env ?? []) {
      if (!u.Env.some((ue) => envKey(ue) === envKey(ie))) u.Env.push(ie);
    }
  }
  if (image.Labels && Object.keys(image.Labels).length) {
    u.Labels = { ...image.Labels, ...(u.Labels ?? {}) };
  }
  if (!u.Entrypoint?.length) {
    if (!u.Cmd?.length) {
      u.Cmd = image.Cmd ?? null;
      if (image.ArgsEscaped) u.ArgsEscaped = true;
    }
    if (u.Entrypoint === undefined || u.Entrypoint === null) u.Entrypoint = image.Entrypoint ?? null;
  }
  const hc = mergeHealthcheck(u.Healthcheck, image.Healthcheck);
  if (hc) u.Healthcheck = hc;
  if (!u.WorkingDir) u.WorkingDir = image.WorkingDir ?? '';
  if (image.Volumes && Object.keys(image.Volumes).length) u.Volumes = { ...(u.Volumes ?? {}), ...image.Volumes };
  if (!u.StopSignal && image.StopSignal) u.StopSignal = image.StopSignal;
  if (!u.Shell?.length && image.Shell?.length) u.Shell = image.Shell;
  if (!u.OnBuild) u.OnBuild = null;
  return u;
}

/** Path and Args of the container process; dockerd's "No command specified" when both are empty. */
export function entrypointAndArgs(c: ContainerConfig): { path: string; args: string[] } {
  const ep = c.Entrypoint ?? [];
  const cmd = c.Cmd ?? [];
  if (ep.length) return { path: ep[0]!, args: [...ep.slice(1), ...cmd] };
  if (!cmd.length) throw invalidArgument('No command specified');
  return { path: cmd[0]!, args: cmd.slice(1) };
}

/**
 * The environment of the container process (moby CreateDaemonEnvironment):
 * PATH and HOSTNAME (and TERM=xterm with a TTY) first, then the config's Env
 * replacing or appending by key.
 */
export function processEnv(
  c: ContainerConfig,
  defaultPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
): string[] {
  const env = [`PATH=${defaultPath}`, `HOSTNAME=${c.Hostname ?? ''}`];
  if (c.Tty) env.push('TERM=xterm');
  for (const e of c.Env ?? []) {
    const k = envKey(e);
    const i = env.findIndex((x) => envKey(x) === k);
    if (i >= 0) env[i] = e;
    else env.push(e);
  }
  return env;
}
