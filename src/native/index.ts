// The small C addon (native/berth_native.c) for the syscalls Node lacks.
// It is built by `npm install` (node-gyp, binding.gyp at the package root).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BerthNative {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lsetxattr(path: string, name: string, value: Buffer): void;
  /** null when the attribute is absent (or xattrs are unsupported there). */
  lgetxattr(path: string, name: string): Buffer | null;
  llistxattr(path: string): string[];
  /** false when the attribute was absent. */
  lremovexattr(path: string, name: string): boolean;
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount2(target: string, flags: number): void;
  /** umount2 on the thread pool (an overlay unmount syncs the upper file system). */
  umount2Async(target: string, flags: number): Promise<void>;
  /** CRC-64/ISO as Go's hash/crc64 computes it; pass the previous result to continue. */
  crc64(data: Buffer, prev?: bigint): bigint;
  /**
   * posix_spawn (on the thread pool): child fd i is /dev/null (stdio[i] = 0)
   * or one end of a new socket pair (1), whose other end is returned in fds[i]
   * (-1 for /dev/null); a new session with `setsid`; signals reset. The
   * caller reaps the child with waitpid.
   */
  spawn(file: string, argv: string[], stdio: number[], setsid: boolean): Promise<{ pid: number; fds: number[] }>;
  /** null while the child runs (nohang), else its exit code (-1 when signalled) and signal. */
  waitpid(pid: number, nohang: boolean): { code: number; signal: number } | null;
}

const here = path.dirname(fileURLToPath(import.meta.url));
// dist/src/native → package root is three levels up.
const root = path.resolve(here, '..', '..', '..');
const require = createRequire(import.meta.url);

export const native: BerthNative = require(path.join(root, 'build', 'Release', 'berth_native.node')) as BerthNative;

export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_BIND = 4096;
export const MS_REC = 16384;
export const MS_PRIVATE = 1 << 18;
export const MNT_DETACH = 2;
