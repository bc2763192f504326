// exportDiff: the tar moby's overlay2 Diff produces for an upper directory
// (go-archive TarWithOptions + OverlayWhiteoutFormat): filepath.WalkDir
// (lexical) order, root skipped, dirs named with a trailing '/', hard links by
// inode, only security.capability exported as an xattr (like moby), 0:0 char
// devices → `.wh.<name>`, opaque dirs → dir entry followed by `.wh..wh..opq`.
// changes: `docker diff` for an overlay upper dir over its lower dirs.
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { errnoCode, invalidArgument } from '../errors/index.js';
import { devMajor, devMinor } from '../fsutil/index.js';
import { native } from '../native/index.js';
import { resolveDir, rootedPath, withNativePath } from './paths.js';
import { encodeHeader, type TarEntrySpec } from './testkit.js';

const CHUNK = 1 << 20;
const OPAQUE = 'trusted.overlay.opaque';

function getxattr(p: string | Buffer, name: string): Buffer | null {
  try {
    return withNativePath(p, (s) => native.lgetxattr(s, name));
  } catch {
    return null;
  }
}

function sortedNames(dir: Buffer): Buffer[] {
  return fs.readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
}

function join(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, Buffer.from('/'), name]);
}

async function* exportGen(upperDir: string, whiteouts: 'overlay' | 'none'): AsyncGenerator<Buffer> {
  const root = Buffer.from(upperDir.replace(/\/+$/, '') || '/');
  const seen = new Map<bigint, string>();
  function* walk(dir: Buffer, prefix: string): Generator<{ p: Buffer; rel: string; st: fs.BigIntStats }> {
    for (const name of sortedNames(dir)) {
      const p = join(dir, name);
      const rel = prefix + name.toString('latin1');
      let st: fs.BigIntStats;
      try {
        st = fs.lstatSync(p, { bigint: true });
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') continue; // vanished while walking (moby logs and skips)
        throw e;
      }
      yield { p, rel, st };
      if (st.isDirectory()) yield* walk(p, `${rel}/`);
    }
  }
  for (const { p, rel, st } of walk(root, '')) {
    if (st.isSocket()) continue; // Go's FileInfoHeader refuses sockets; moby skips them
    const name = Buffer.from(rel, 'latin1');
    const spec: TarEntrySpec = {
      name: st.isDirectory() ? Buffer.concat([name, Buffer.from('/')]) : name,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: Number(st.mtimeMs / 1000n),
      format: 'auto',
    };
    let size = 0;
    if (st.isDirectory()) spec.type = '5';
    else if (st.isFile()) {
      spec.type = '0';
      size = Number(st.size);
    } else if (st.isSymbolicLink()) {
      spec.type = '2';
      spec.linkname = fs.readlinkSync(p, { encoding: 'buffer' });
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      spec.type = st.isCharacterDevice() ? '3' : '4';
      spec.devmajor = devMajor(Number(st.rdev));
      spec.devminor = devMinor(Number(st.rdev));
    } else if (st.isFIFO()) spec.type = '6';
    const cap = getxattr(p, 'security.capability');
    if (cap) {
      let v = cap;
      if (v.length > 3 && v[3] === 3) {
        v = Buffer.from(v.subarray(0, 20));
        v[3] = 2; // VFS_CAP_REVISION_3 → 2, as moby does
      }
      spec.xattrs = { 'security.capability': v };
    }
    if (!st.isDirectory() && st.nlink > 1n) {
      const first = seen.get(st.ino);
      if (first !== undefined) {
        spec.type = '1';
        spec.linkname = Buffer.from(first, 'latin1');
        size = 0;
      } else seen.set(st.ino, rel);
    }
    let opaque: TarEntrySpec | undefined;
    if (whiteouts === 'overlay') {
      if (st.isCharacterDevice() && spec.devmajor === 0 && spec.devminor === 0) {
        const slash = rel.lastIndexOf('/');
        spec.name = Buffer.from(`${rel.slice(0, slash + 1)}.wh.${rel.slice(slash + 1)}`, 'latin1');
        spec.mode = 0o600;
        spec.type = '0';
        size = 0;
      } else if (st.isDirectory()) {
        const o = getxattr(p, OPAQUE);
        if (o && o.length === 1 && o[0] === 0x79) {
          opaque = {
            name: Buffer.from(`${rel}/.wh..wh..opq`, 'latin1'),
            type: '0',
            mode: spec.mode! & 0o777,
            uid: spec.uid,
            gid: spec.gid,
            mtime: 0,
            format: 'auto',
          };
        }
      }
    }
    yield encodeHeader(spec, size);
    if (size > 0) {
      const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        let done = 0;
        while (done < size) {
          const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - done));
          const n = fs.readSync(fd, buf, 0, buf.length, null);
          if (n === 0) throw invalidArgument(`exporting diff: ${JSON.stringify(rel)} shrank while being read`);
          done += n;
          yield n === buf.length ? buf : buf.subarray(0, n);
        }
      } finally {
        fs.closeSync(fd);
      }
      if (size % 512) yield Buffer.alloc(512 - (size % 512));
    }
    if (opaque) yield encodeHeader(opaque, 0);
  }
  yield Buffer.alloc(1024);
}

/** The layer tar of an (overlay upper) directory, as moby's overlay2 Diff writes it. */
export function exportDiff(upperDir: string, opts: { whiteouts: 'overlay' | 'none' }): Readable {
  return Readable.from(exportGen(upperDir, opts.whiteouts), { objectMode: false });
}

export interface Change {
  path: string;
  /** 0 modified, 1 added, 2 deleted (moby's ChangeKind). */
  kind: 0 | 1 | 2;
}

function statInLayer(layer: string, rel: string): fs.Stats | null {
  const parts = rel.split('/');
  const base = parts.pop()!;
  let parent: string | null;
  try {
    parent = resolveDir(layer, parts, { entry: rel });
  } catch {
    return null;
  }
  if (parent === null) return null;
  try {
    return fs.lstatSync(rootedPath(layer, parent ? `${parent}/${base}` : base));
  } catch {
    return null;
  }
}

function sameTime(a: fs.Stats, b: fs.Stats): boolean {
  const as = Math.floor(a.mtimeMs / 1000);
  const bs = Math.floor(b.mtimeMs / 1000);
  return a.mtimeMs === b.mtimeMs || (as === bs && (a.mtimeMs % 1000 === 0 || b.mtimeMs % 1000 === 0));
}

/** `docker diff` of an overlay upper dir (moby archive.OverlayChanges semantics). */
export async function changes(upperDir: string, lowerDirs: string[]): Promise<Change[]> {
  const root = Buffer.from(upperDir.replace(/\/+$/, '') || '/');
  const out: Change[] = [];
  const changedDirs = new Set<string>();
  const walk = (dir: Buffer, prefix: string) => {
    for (const name of sortedNames(dir)) {
      const p = join(dir, name);
      const rel = prefix + name.toString('latin1');
      const path = `/${Buffer.from(rel, 'latin1').toString('utf8')}`;
      const st = fs.lstatSync(p);
      let kind: 0 | 1 | 2 | undefined;
      if (st.isCharacterDevice() && st.rdev === 0) kind = 2;
      else if (st.isDirectory()) {
        const o = getxattr(p, OPAQUE);
        if (o && o.length === 1 && o[0] === 0x79) kind = 2;
      }
      let skip = false;
      if (kind === undefined) {
        kind = 1;
        for (const layer of lowerDirs) {
          const ls = statInLayer(layer, rel);
          if (!ls) continue;
          if (ls.isDirectory() && st.isDirectory() && ls.size === st.size && ls.mode === st.mode && sameTime(st, ls))
            skip = true;
          kind = 0;
          break;
        }
      }
      if (!skip) {
        if (st.isDirectory()) changedDirs.add(path);
        if (kind === 1 || kind === 2) {
          const parent = path.slice(0, path.lastIndexOf('/')) || '/';
          if (parent !== '/' && !changedDirs.has(parent)) {
            out.push({ path: parent, kind: 0 });
            changedDirs.add(parent);
          }
        }
        out.push({ path, kind });
      }
      if (st.isDirectory()) walk(p, `${rel}/`);
    }
  };
  walk(root, '');
  return out;
}
