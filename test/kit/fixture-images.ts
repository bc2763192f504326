// Images made locally (no network) on a reference dockerd: a busybox-static
// base via `docker import`, and a multi-layer image via the legacy builder
// with whiteouts, an opaque directory, hard links and a long file name.
import { spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { ReferenceDockerd } from './reference-dockerd.js';

export const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'ls', 'cat', 'echo', 'rm', 'mkdir', 'ln', 'touch', 'printf', 'seq', 'true'];

/** Writes a tar of a minimal busybox rootfs to `<dir>/base.tar` and returns its path. */
export async function makeBusyboxRootfsTar(dir: string): Promise<string> {
  const root = path.join(dir, 'rootfs');
  await fsp.mkdir(path.join(root, 'bin'), { recursive: true });
  await fsp.mkdir(path.join(root, 'tmp'), { recursive: true });
  await fsp.mkdir(path.join(root, 'etc'), { recursive: true });
  await fsp.copyFile(BUSYBOX, path.join(root, 'bin/busybox'));
  await fsp.chmod(path.join(root, 'bin/busybox'), 0o755);
  for (const a of APPLETS) await fsp.symlink('busybox', path.join(root, 'bin', a));
  const out = path.join(dir, 'base.tar');
  const r = spawnSync('tar', ['--numeric-owner', '-C', root, '-cf', out, '.'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr}`);
  return out;
}

export const MULTI_DOCKERFILE = `FROM bbase:1
RUN mkdir -p /d/sub /d/gone && echo hi > /d/sub/f && echo x > /d/keep && ln /d/keep /d/hard && echo g > /d/gone/x && touch /d/$(printf 'n%.0s' $(seq 1 150))
RUN rm -f /d/keep && rm -rf /d/sub /d/gone && mkdir /d/sub && echo new > /d/sub/g
ENV FOO=bar
RUN echo third > /third
`;

export interface FixtureImages {
  base: string;
  multi: string;
}

/** Creates `bbase:1` (import) and `multi:v1` + `other/multi:latest` (build). Returns their IDs. */
export async function makeFixtureImages(d: ReferenceDockerd, workDir: string): Promise<FixtureImages> {
  const baseTar = await makeBusyboxRootfsTar(workDir);
  const base = (await d.dockerOk(['import', baseTar, 'bbase:1'])).trim();
  const ctx = path.join(workDir, 'ctx');
  await fsp.mkdir(ctx, { recursive: true });
  await fsp.writeFile(path.join(ctx, 'Dockerfile'), MULTI_DOCKERFILE);
  await d.dockerOk(['build', '--network', 'none', '-q', '-t', 'multi:v1', ctx], {
    env: { DOCKER_BUILDKIT: '0' },
    timeoutMs: 120_000,
  });
  await d.dockerOk(['tag', 'multi:v1', 'other/multi:latest']);
  const multi = (await d.dockerOk(['inspect', '--format', '{{.Id}}', 'multi:v1'])).trim();
  return { base, multi };
}
