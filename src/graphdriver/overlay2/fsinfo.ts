// Facts about the backing filesystem that the overlay2 driver reports and
// checks at startup (moby daemon/internal/fstype, overlayutils, continuity
// fs.SupportsDType).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MNT_DETACH, native } from '../../native/index.js';

/** statfs f_type values → the names moby prints as "Backing Filesystem". */
const FS_NAMES: Record<number, string> = {
  1635083891: 'aufs',
  2435016766: 'btrfs',
  684539205: 'cramfs',
  1684170528: 'debugfs',
  61267: 'extfs',
  61791: 'ecryptfs',
  1702057286: 'fuseblk',
  26985: 'nfs',
  2035054128: 'overlayfs',
  40864: 'proc',
  1382369651: 'reiserfs',
  1936814952: 'squashfs',
  16914836: 'tmpfs',
  352400198: 'udf',
  1481003842: 'xfs',
  801189825: 'zfs',
  38496: 'isofs',
};

export const OVERLAYFS_MAGIC = 0x794c7630;

export function fsMagic(p: string): number {
  // f_type is signed in some libcs; normalise to unsigned.
  return fs.statfsSync(p).type >>> 0;
}

export function backingFsName(p: string): string {
  return FS_NAMES[fsMagic(p)] ?? '<unknown>';
}

export function isOverlayMount(p: string): boolean {
  try {
    return fsMagic(p) === OVERLAYFS_MAGIC;
  } catch {
    return false;
  }
}

interface RawFsBinding {
  readdir(p: string, encoding: string, withTypes: boolean): [string[], number[]];
}

/**
 * Whether readdir(3) on `dir`'s filesystem fills d_type. Node hides DT_UNKNOWN
 * (it lstat()s such entries), so this asks the raw binding; when that is not
 * available it falls back to the filesystem type (only xfs without ftype and
 * some network filesystems lack d_type).
 */
export function supportsDType(dir: string): boolean {
  const probe = path.join(dir, `.tmp-dtype-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(probe);
  try {
    fs.writeFileSync(path.join(probe, 'f'), '');
    let binding: RawFsBinding | undefined;
    try {
      binding = (process as unknown as { binding(name: string): RawFsBinding }).binding('fs');
    } catch {
      binding = undefined;
    }
    if (binding && typeof binding.readdir === 'function') {
      const [names, types] = binding.readdir(probe, 'utf8', true);
      const i = names.indexOf('f');
      if (i >= 0 && Array.isArray(types)) return types[i] !== 0; // 0 = UV_DIRENT_UNKNOWN
    }
    return backingFsName(dir) !== 'nfs';
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

/**
 * Mounts a two-lower overlay in a scratch directory under `dir` to prove the
 * kernel supports overlay (with multiple lower dirs) on this filesystem
 * (moby overlayutils.SupportsOverlay).
 */
export function checkOverlaySupport(dir: string): void {
  const probe = path.join(dir, `.tmp-overlay-check-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(probe, { recursive: true });
  try {
    for (const d of ['lower1', 'lower2', 'upper', 'work', 'merged']) fs.mkdirSync(path.join(probe, d));
    const opts = `lowerdir=${probe}/lower2:${probe}/lower1,upperdir=${probe}/upper,workdir=${probe}/work`;
    native.mount('overlay', path.join(probe, 'merged'), 'overlay', 0, opts);
    native.umount2(path.join(probe, 'merged'), MNT_DETACH);
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

/** moby doesSupportNativeDiff: native diff is unusable when the kernel uses redirect_dir. */
export function nativeDiffSupported(): boolean {
  try {
    const v = fs.readFileSync('/sys/module/overlay/parameters/redirect_dir', 'utf8').trim();
    return v !== 'Y' && v !== 'on';
  } catch {
    return true;
  }
}

/** Whether the overlay module knows `index=` (then mounts pass `index=off`). */
export function overlayHasIndexParam(): boolean {
  return fs.existsSync('/sys/module/overlay/parameters/index');
}

/** True inside a user namespace (then overlay needs `userxattr`). */
export function runningInUserNS(): boolean {
  try {
    const m = fs.readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
    return !(m[0] === '0' && m[1] === '0' && m[2] === '4294967295');
  } catch {
    return false;
  }
}

/** Mount points (from /proc/self/mountinfo) at or below `root`, deepest first. */
export function mountsUnder(root: string): string[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  const prefix = root.endsWith('/') ? root : `${root}/`;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = (f[4] as string).replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (mp === root || mp.startsWith(prefix)) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}
