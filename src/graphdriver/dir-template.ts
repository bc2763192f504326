// A small directory tree recorded once and re-created elsewhere: what a
// container's `-init` layer holds is the same for every container of an image
// (moby's initlayer writes the same placeholders over the same lower layers),
// so the layer store records the first one's diff directory and replays it
// into the next ones without mounting an overlay (a mount, the init writes
// with their copy-ups, and an unmount that syncs the upper file system).
//
// Recorded exactly as overlayfs left it: types, modes, owners, symlink
// targets, devices (whiteouts are 0:0 character devices), small file contents,
// and xattrs — the opaque marker included — except overlayfs's own
// bookkeeping of where a copied-up inode came from (origin, impure), which
// describes the first layer's inodes and means nothing in another directory.
// Times are not kept: the replayed entries are as new as overlayfs's own.
import fs from 'node:fs';
import path from 'node:path';
import { devMajor, devMinor } from '../fsutil/index.js';
import { native } from '../native/index.js';

/** xattrs overlayfs sets for its own inode bookkeeping (not content). */
const SKIPPED_XATTRS = new Set(['trusted.overlay.origin', 'trusted.overlay.impure', 'trusted.overlay.nlink']);
/** Limits past which a tree is not worth a template (init layers are a few empty files). */
const MAX_ENTRIES = 256;
const MAX_FILE_BYTES = 64 * 1024;
const MAX_TOTAL_BYTES = 1024 * 1024;

type EntryKind = 'dir' | 'file' | 'symlink' | 'char' | 'block' | 'fifo';

export interface TemplateEntry {
  /** Relative to the tree's root, `/`-separated; parents come before children. */
  rel: string;
  kind: EntryKind;
  /** Permission bits with setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  content?: Buffer;
  target?: Buffer;
  rdev?: { major: number; minor: number };
  xattrs: Array<[string, Buffer]>;
}

export type DirTemplate = readonly TemplateEntry[];

function kindOf(st: fs.Stats): EntryKind | undefined {
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return undefined;
}

/**
 * Records the tree under `root` (not `root` itself), or returns null when it
 * holds something a template does not reproduce faithfully (hard links,
 * sockets, large files, many entries).
 */
export function recordTree(root: string): DirTemplate | null {
  const out: TemplateEntry[] = [];
  let total = 0;
  const walk = (rel: string): boolean => {
    const names = fs.readdirSync(rel ? path.join(root, rel) : root).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(root, r);
      const st = fs.lstatSync(p);
      const kind = kindOf(st);
      if (!kind || (kind !== 'dir' && st.nlink > 1) || out.length >= MAX_ENTRIES) return false;
      const e: TemplateEntry = { rel: r, kind, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, xattrs: [] };
      for (const x of native.llistxattr(p)) {
        if (SKIPPED_XATTRS.has(x)) continue;
        const v = native.lgetxattr(p, x);
        if (v) e.xattrs.push([x, v]);
      }
      if (kind === 'file') {
        total += st.size;
        if (st.size > MAX_FILE_BYTES || total > MAX_TOTAL_BYTES) return false;
        e.content = fs.readFileSync(p);
      } else if (kind === 'symlink') e.target = fs.readlinkSync(p, { encoding: 'buffer' });
      else if (kind === 'char' || kind === 'block') e.rdev = { major: devMajor(st.rdev), minor: devMinor(st.rdev) };
      out.push(e);
      if (kind === 'dir' && !walk(r)) return false;
    }
    return true;
  };
  return walk('') ? out : null;
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

/** Re-creates a recorded tree under `root` (an existing, empty directory). */
export function replayTree(t: DirTemplate, root: string): void {
  for (const e of t) {
    const p = path.join(root, e.rel);
    switch (e.kind) {
      case 'dir':
        fs.mkdirSync(p, { mode: 0o700 });
        break;
      case 'file': {
        const fd = fs.openSync(p, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600);
        try {
          if (e.content?.length) fs.writeSync(fd, e.content);
        } finally {
          fs.closeSync(fd);
        }
        break;
      }
      case 'symlink':
        fs.symlinkSync(e.target!, p);
        break;
      default: {
        const type = e.kind === 'char' ? S_IFCHR : e.kind === 'block' ? S_IFBLK : S_IFIFO;
        native.mknod(p, type | 0o600, e.rdev?.major ?? 0, e.rdev?.minor ?? 0);
      }
    }
    fs.lchownSync(p, e.uid, e.gid);
    // after chown, which clears setuid/setgid bits
    if (e.kind !== 'symlink') fs.chmodSync(p, e.mode);
    for (const [k, v] of e.xattrs) native.lsetxattr(p, k, v);
  }
}
