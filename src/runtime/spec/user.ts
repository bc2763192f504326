// User and group resolution through the container's /etc/passwd and
// /etc/group (runc libcontainer/user GetExecUserPath semantics, dockerd's
// texts), reading the files inside the rootfs without following symlinks out.
import fs from 'node:fs';
import path from 'node:path';
import { invalidArgument } from '../../errors/index.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Resolves `p` (absolute, in-container) under `root`, keeping symlinks inside root. */
export function resolveInRoot(root: string, p: string, depth = 0): string {
  if (depth > 40) throw invalidArgument(`too many levels of symbolic links: ${p}`);
  const parts = p.split('/').filter(Boolean);
  let cur = '/';
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '.') continue;
    if (part === '..') {
      cur = path.posix.dirname(cur);
      continue;
    }
    const next = path.posix.join(cur, part);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path.join(root, next));
    } catch {
      return path.join(root, next, ...parts.slice(i + 1));
    }
    if (st.isSymbolicLink()) {
      const target = fs.readlinkSync(path.join(root, next));
      const abs = target.startsWith('/') ? target : path.posix.join(cur, target);
      const resolved = resolveInRoot(root, abs, depth + 1);
      cur = path.posix.join('/', path.relative(root, resolved));
      continue;
    }
    cur = next;
  }
  return path.join(root, cur);
}

function readLines(file: string): string[] | undefined {
  try {
    return fs.readFileSync(file, 'utf8').split('\n');
  } catch {
    return undefined;
  }
}

export function parsePasswd(lines: string[]): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const l of lines) {
    if (!l.trim() || l.startsWith('#')) continue;
    const f = l.split(':');
    out.push({ name: f[0] ?? '', uid: Number(f[2] ?? NaN), gid: Number(f[3] ?? NaN), home: f[5] ?? '' });
  }
  return out;
}

function parseGroup(lines: string[]): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const l of lines) {
    if (!l.trim() || l.startsWith('#')) continue;
    const f = l.split(':');
    out.push({ name: f[0] ?? '', gid: Number(f[2] ?? NaN), members: (f[3] ?? '').split(',').filter(Boolean) });
  }
  return out;
}

const isNum = (s: string) => /^\d+$/.test(s);

export interface ExecUser {
  uid: number;
  gid: number;
  sgids: number[];
  home: string;
}

/** runc's GetExecUserPath for `user[:group]` with the default user root (0:0, "/"). */
export function getExecUser(root: string, spec: string): ExecUser {
  const passwd = readLines(resolveInRoot(root, '/etc/passwd'));
  const group = readLines(resolveInRoot(root, '/etc/group'));
  const [userArg = '', groupArg] = spec.split(':', 2) as [string, string | undefined];
  const u: ExecUser = { uid: 0, gid: 0, sgids: [], home: '/' };
  const users = passwd ? parsePasswd(passwd) : [];
  let entry: PasswdEntry | undefined;
  if (userArg !== '') {
    entry = users.find((e) => e.name === userArg || (isNum(userArg) && e.uid === Number(userArg)));
    if (!entry) {
      if (!isNum(userArg)) throw invalidArgument(`unable to find user ${userArg}: no matching entries in passwd file`);
      u.uid = Number(userArg);
    }
  } else entry = users.find((e) => e.uid === 0);
  if (entry) {
    u.uid = entry.uid;
    u.gid = entry.gid;
    u.home = entry.home;
  }
  const groups = group ? parseGroup(group) : [];
  if (groupArg !== undefined && groupArg !== '') {
    const g = groups.find((e) => e.name === groupArg || (isNum(groupArg) && e.gid === Number(groupArg)));
    if (g) u.gid = g.gid;
    else if (isNum(groupArg)) u.gid = Number(groupArg);
    else throw invalidArgument(`unable to find group ${groupArg}: no matching entries in group file`);
  } else if (entry) {
    // supplementary groups: every group listing the user as a member
    u.sgids = groups.filter((g) => g.members.includes(entry!.name)).map((g) => g.gid);
  }
  return u;
}

/**
 * runc GetAdditionalGroupsPath for --group-add (names or numbers). Like runc, each gid is added once
 * (`--group-add 5 --group-add 5` gives [5]), and a name whose group was already added is an error
 * (runc finds no unused match and the name is not a number). runc returns the gids in Go map order
 * (random); berth keeps the order of the request.
 */
export function getAdditionalGroups(root: string, add: string[]): number[] {
  const group = readLines(resolveInRoot(root, '/etc/group'));
  const groups = group ? parseGroup(group) : [];
  const gids: number[] = [];
  for (const a of add) {
    // the first matching entry whose gid is not taken yet
    const g = groups.find((e) => (e.name === a || String(e.gid) === a) && !gids.includes(e.gid));
    if (g) gids.push(g.gid);
    else if (isNum(a)) {
      if (!gids.includes(Number(a))) gids.push(Number(a));
    } else throw invalidArgument(`Unable to find group ${a}: no matching entries in group file`);
  }
  return gids;
}
