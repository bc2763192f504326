// Path handling confined to a root directory, with chroot semantics: symlinks
// met in parent components are followed, but absolute targets restart at the
// root and `..` never climbs above it. Nothing outside the root is ever
// lstat'ed, created or modified. Paths are latin1 "binary strings" (raw bytes).
import fs from 'node:fs';
import { errnoCode, invalidArgument } from '../errors/index.js';
import { native } from '../native/index.js';

const ASCII = /^[\x20-\x7e]*$/;

/** Absolute fs path (string when plain ASCII, else Buffer) of `rel` under `root`. */
export function rootedPath(root: string, rel: string): string | Buffer {
  if (rel === '') return root;
  if (ASCII.test(rel)) return `${root}/${rel}`;
  return Buffer.concat([Buffer.from(root, 'utf8'), Buffer.from(`/${rel}`, 'latin1')]);
}

export interface ResolveOptions {
  /** Known real directories (resolved rel paths); consulted and extended. */
  cache?: Set<string>;
  /** Called to create a missing directory component (rel path); when absent, missing → null. */
  create?: (rel: string) => void;
  /** Name of the entry, for error messages. */
  entry: string;
}

/**
 * Resolves the directory `parts` (already cleaned, no `.`/`..`/empty parts
 * expected but tolerated) inside root. Returns the resolved rel path of a real
 * directory ('' = the root), or null when a component is missing and no
 * `create` was given.
 */
export function resolveDir(root: string, parts: string[], opts: ResolveOptions): string | null {
  const cache = opts.cache;
  if (parts.length === 0) return '';
  if (cache) {
    const whole = parts.join('/');
    if (cache.has(whole)) return whole;
  }
  let cur: string[] = [];
  let queue = parts;
  let i = 0;
  let hops = 0;
  while (i < queue.length) {
    const c = queue[i++]!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      cur.pop();
      continue;
    }
    cur.push(c);
    const key = cur.join('/');
    if (cache?.has(key)) continue;
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(rootedPath(root, key));
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
    if (!st) {
      if (!opts.create) return null;
      opts.create(key);
      cache?.add(key);
      continue;
    }
    if (st.isDirectory()) {
      cache?.add(key);
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40)
        throw invalidArgument(`too many levels of symbolic links resolving ${JSON.stringify(opts.entry)}`);
      const target = fs.readlinkSync(rootedPath(root, key), { encoding: 'buffer' }).toString('latin1');
      cur.pop();
      if (target.startsWith('/')) cur = [];
      queue = target.split('/').concat(queue.slice(i));
      i = 0;
      continue;
    }
    throw invalidArgument(`${JSON.stringify(opts.entry)}: parent ${JSON.stringify(key)} is not a directory`);
  }
  return cur.join('/');
}

/**
 * Runs `fn` with a UTF-8 string path naming `p` (the native addon takes only
 * strings). Non-UTF-8 paths are reached by renaming the node to a temporary
 * ASCII name in its directory, opened via /proc/self/fd, and renaming it back.
 */
export function withNativePath<T>(p: string | Buffer, fn: (s: string) => T): T {
  if (typeof p === 'string') return fn(p);
  const s = p.toString('utf8');
  if (Buffer.from(s, 'utf8').equals(p)) return fn(s);
  const slash = p.lastIndexOf(0x2f);
  const dir = p.subarray(0, slash);
  const base = p.subarray(slash + 1);
  const dfd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    const tmpName = `.berth-tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const via = `/proc/self/fd/${dfd}`;
    fs.renameSync(Buffer.concat([Buffer.from(`${via}/`), base]), `${via}/${tmpName}`);
    try {
      return fn(`${via}/${tmpName}`);
    } finally {
      fs.renameSync(`${via}/${tmpName}`, Buffer.concat([Buffer.from(`${via}/`), base]));
    }
  } finally {
    fs.closeSync(dfd);
  }
}

export function lsetxattrAny(p: string | Buffer, name: string, value: Buffer): void {
  withNativePath(p, (s) => native.lsetxattr(s, name, value));
}

export function mknodAny(p: string | Buffer, mode: number, major: number, minor: number): void {
  if (typeof p === 'string') {
    native.mknod(p, mode, major, minor);
    return;
  }
  const s = p.toString('utf8');
  if (Buffer.from(s, 'utf8').equals(p)) {
    native.mknod(s, mode, major, minor);
    return;
  }
  // Create under a temporary ASCII name in the same directory, then rename.
  const slash = p.lastIndexOf(0x2f);
  const dfd = fs.openSync(p.subarray(0, slash), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    const via = `/proc/self/fd/${dfd}`;
    const tmp = `${via}/.berth-tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    native.mknod(tmp, mode, major, minor);
    fs.renameSync(tmp, Buffer.concat([Buffer.from(`${via}/`), p.subarray(slash + 1)]));
  } finally {
    fs.closeSync(dfd);
  }
}
