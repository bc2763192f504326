// Paths inside an extracted `docker save` tar. Names from the archive and from
// manifest.json are untrusted: `..` components and absolute paths are refused
// outright, and symlinks are followed only within the extraction root (like
// moby's symlink.FollowSymlinkInScope).
import fs from 'node:fs';
import path from 'node:path';
import { invalidArgument } from '../../errors/index.js';

/** Splits an archive/manifest path into clean components; refuses `..` and NUL. */
export function cleanRelative(p: string, what: string): string[] {
  if (p.includes('\0')) throw invalidArgument(`invalid ${what} path ${JSON.stringify(p)}`);
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.includes('..')) throw invalidArgument(`invalid ${what} path ${JSON.stringify(p)}: path traversal`);
  return parts;
}

/** Like cleanRelative, but also refuses absolute paths (manifest.json entries). */
export function cleanManifestPath(p: string): string[] {
  if (typeof p !== 'string' || p === '') throw invalidArgument(`invalid manifest path ${JSON.stringify(p)}`);
  if (p.startsWith('/')) throw invalidArgument(`invalid manifest path ${JSON.stringify(p)}: absolute path`);
  return cleanRelative(p, 'manifest');
}

/** Resolves `parts` under `root`, following symlinks but never leaving `root`. */
export function resolveInScope(root: string, parts: string[]): string {
  let todo = [...parts];
  let done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const p = todo.shift()!;
    if (p === '..') {
      done.pop();
      continue;
    }
    const full = path.join(root, ...done, p);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(full);
    } catch {
      done.push(p);
      continue;
    }
    if (!st.isSymbolicLink()) {
      done.push(p);
      continue;
    }
    if (++hops > 255) throw invalidArgument(`too many symlinks resolving ${JSON.stringify(parts.join('/'))}`);
    const target = fs.readlinkSync(full);
    if (target.startsWith('/')) done = [];
    todo = [...target.split('/').filter((x) => x !== '' && x !== '.'), ...todo];
  }
  return path.join(root, ...done);
}

/** Throws unless no existing component of `parts` under `root` (except the last) is a symlink or non-directory. */
export function assertNoSymlinkParents(root: string, parts: string[]): void {
  let cur = root;
  for (const p of parts.slice(0, -1)) {
    cur = path.join(cur, p);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(cur);
    } catch {
      return;
    }
    if (!st.isDirectory()) {
      throw invalidArgument(`invalid tar entry: ${JSON.stringify(parts.join('/'))} goes through a non-directory`);
    }
  }
}
