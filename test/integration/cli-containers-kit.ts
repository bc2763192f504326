// Shared by cli-containers*.test.ts: a busybox rootfs with the applets the
// tests use (and /etc/passwd, /etc/group for `id`), as a tar to `docker import`.
import { spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { BUSYBOX } from '../kit/fixture-images.js';

const APPLETS = [
  'sh',
  'ls',
  'cat',
  'echo',
  'rm',
  'mkdir',
  'ln',
  'touch',
  'printf',
  'seq',
  'true',
  'false',
  'sleep',
  'id',
  'grep',
  'tty',
  'env',
  'wc',
  'head',
  'tail',
  'stat',
  'sort',
];

/** `<dir>/bbox.tar`: busybox-static with the applets above, /etc/passwd and /etc/group. */
export async function makeTestRootfsTar(dir: string): Promise<string> {
  const root = path.join(dir, 'bbox-rootfs');
  for (const d of ['bin', 'tmp', 'etc', 'data', 'home/user1']) await fsp.mkdir(path.join(root, d), { recursive: true });
  await fsp.chmod(path.join(root, 'tmp'), 0o1777);
  await fsp.copyFile(BUSYBOX, path.join(root, 'bin/busybox'));
  await fsp.chmod(path.join(root, 'bin/busybox'), 0o755);
  for (const a of APPLETS) await fsp.symlink('busybox', path.join(root, 'bin', a));
  await fsp.writeFile(
    path.join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nuser1:x:1000:1000:u:/home/user1:/bin/sh\n',
  );
  await fsp.writeFile(path.join(root, 'etc/group'), 'root:x:0:\nuser1:x:1000:\nextra:x:2000:user1\n');
  await fsp.writeFile(path.join(root, 'data/hello'), 'from-image\n');
  const out = path.join(dir, 'bbox.tar');
  const r = spawnSync('tar', ['--numeric-owner', '-C', root, '-cf', out, '.'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr}`);
  return out;
}

/** `docker import` changes for the test image (PATH, and an image VOLUME for copy-up). */
export const IMPORT_CHANGES = [
  '-c',
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  '-c',
  'VOLUME /data',
];

/** Polls until fn() is truthy (bounded). */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, stepMs = 100): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
