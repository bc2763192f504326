// applyLayer: one pass over an uncompressed layer tar that digests it (diff
// ID), records tar-split metadata and extracts it the way moby's overlay2
// ApplyDiff does (go-archive Unpack with the overlay whiteout converter).
//
// Safety model: every path is resolved inside `dest` with chroot semantics
// (see paths.ts): absolute names are rooted at dest, names whose cleaned form
// starts with `..` are rejected, symlinks in parent components are followed
// but can never lead outside dest, final components are created with
// O_EXCL/O_NOFOLLOW (or after unlinking what was there), and hard link
// targets are resolved the same way. Symlinks themselves may point anywhere:
// they are data, never followed by the extractor except inside dest.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { BerthError, errnoCode, invalidArgument } from '../errors/index.js';
import { native } from '../native/index.js';
import type { Digest } from '../oci/index.js';
import { lsetxattrAny, mknodAny, resolveDir, rootedPath } from './paths.js';
import { cleanPath, type TarHeader, TarParser, type TarSink } from './tar.js';
import { TarSplitWriter } from './tarsplit.js';

export interface ApplyResult {
  diffId: Digest;
  /** Bytes of the (uncompressed) tar stream. */
  tarSize: number;
  /** What moby's overlay2 records as the layer size: directory.Size of the extracted dir. */
  size: number;
}

export interface ApplyOptions {
  tarSplitPath?: string;
  whiteouts: 'overlay' | 'none';
  signal?: AbortSignal;
  /** Create char/block devices from the tar (default true). */
  allowDevices?: boolean;
  /**
   * Refuse (NoOverwriteError, nothing changed for that entry) to replace an
   * existing directory with a non-directory or the reverse (go-archive's
   * TarOptions.NoOverwriteDirNonDir, what `docker cp` asks for).
   */
  noOverwriteDirNonDir?: boolean;
  /** How dest is named in those errors (default "/"; dockerd names the directory inside the container). */
  shownDest?: string;
  /** Owner for every extracted entry instead of the tar's uid/gid (go-archive's ChownOpts). */
  chown?: { uid: number; gid: number };
}

/** An entry refused by ApplyOptions.noOverwriteDirNonDir; the message is go-archive's. */
export class NoOverwriteError extends BerthError {
  constructor(message: string) {
    super('internal', message);
  }
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
const CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const MAX_TIME = 9223372036.854776; // Go's unixMaxTime (1<<63-1 ns), in seconds

function boundTime(t: number): number {
  return t < 0 || t > MAX_TIME ? 0 : t;
}

function q(s: string): string {
  return JSON.stringify(Buffer.from(s, 'latin1').toString('utf8'));
}

const INPUT_ERRNOS = new Set([
  'EEXIST',
  'EPERM',
  'ENOTDIR',
  'EISDIR',
  'ELOOP',
  'ENAMETOOLONG',
  'EINVAL',
  'EXDEV',
  'EMLINK',
]);

class Extractor {
  private readonly cache = new Set<string>();
  private readonly dirs: Array<{ rel: string; atime: number; mtime: number; name: string }> = [];
  private fd = -1;
  private cur?: { h: TarHeader; rel: string; p: string | Buffer; written: number };
  private regularBytes = 0;
  private symlinkBytes = 0;
  private dirty = false;
  private readonly allowDevices: boolean;

  constructor(
    private readonly dest: string,
    private readonly whiteouts: 'overlay' | 'none',
    allowDevices: boolean | undefined,
    private readonly noOverwriteDirNonDir = false,
    private readonly shownDest = '/',
  ) {
    this.allowDevices = allowDevices !== false;
  }

  private p(rel: string): string | Buffer {
    return rootedPath(this.dest, rel);
  }

  private remove(rel: string): void {
    fs.rmSync(this.p(rel), { recursive: true, force: true });
    this.cache.clear();
    this.dirty = true;
  }

  /** Runs create(); if the final path exists, removes it and retries once. */
  private createReplacing(rel: string, create: () => void): void {
    try {
      create();
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
      this.remove(rel);
      create();
    }
  }

  private readonly mkImplied = (rel: string): void => {
    const p = this.p(rel);
    fs.mkdirSync(p, 0o755);
    fs.lchownSync(p, 0, 0);
    fs.chmodSync(p, 0o755);
  };

  private setXattrs(h: TarHeader, p: string | Buffer): void {
    for (const [k, v] of h.xattrs) {
      try {
        lsetxattrAny(p, Buffer.from(k, 'latin1').toString('utf8'), v);
      } catch (e) {
        if (errnoCode(e) !== 'EPERM') throw e; // moby ignores EPERM
      }
    }
  }

  private times(h: TarHeader): [number, number] {
    const mt = boundTime(h.mtime);
    const at = h.atime !== undefined && h.atime > h.mtime ? boundTime(h.atime) : mt;
    return [at, mt];
  }

  begin(h: TarHeader): void {
    this.cur = undefined;
    const t = h.typeflag;
    if (t === 'g') return; // PAX global headers are ignored, as moby does
    if (!'0123456'.includes(t) || t.length !== 1)
      throw invalidArgument(`unhandled tar entry type ${JSON.stringify(t)} for ${q(h.name)}`);
    if ((t === '3' || t === '4') && !this.allowDevices)
      throw invalidArgument(`device node ${q(h.name)} is not allowed in this layer`);
    const clean = cleanPath(h.name);
    if (clean === '..' || clean.startsWith('../')) throw invalidArgument(`${q(h.name)} is outside of ${q(this.dest)}`);
    let rel = clean.replace(/^\/+/, '');
    if (rel === '.') rel = '';
    if (rel === '') {
      if (t === '5') return; // the layer root: dest already exists (moby skips "." too)
      throw invalidArgument(`entry ${q(h.name)} would replace the root of the layer`);
    }
    const slash = rel.lastIndexOf('/');
    const base = rel.slice(slash + 1);
    const parent = resolveDir(this.dest, slash < 0 ? [] : rel.slice(0, slash).split('/'), {
      cache: this.cache,
      create: this.mkImplied,
      entry: h.name,
    })!;
    const prel = parent ? `${parent}/${base}` : base;
    const p = this.p(prel);
    if (this.noOverwriteDirNonDir) this.refuseDirNonDir(p, rel, t === '5');

    if (this.whiteouts === 'overlay' && base.startsWith('.wh.')) {
      if (base === '.wh.' || base === '.wh..' || base === '.wh...')
        throw invalidArgument(`invalid whiteout entry ${q(h.name)}`);
      if (base === '.wh..wh..opq') {
        lsetxattrAny(this.p(parent), 'trusted.overlay.opaque', Buffer.from('y'));
        return;
      }
      const orig = parent ? `${parent}/${base.slice(4)}` : base.slice(4);
      const op = this.p(orig);
      this.createReplacing(orig, () => mknodAny(op, S_IFCHR, 0, 0));
      fs.lchownSync(op, h.uid, h.gid);
      // moby leaves the whiteout's mtime at "now"; keeping the entry's makes a
      // re-export of the layer byte-identical to the tar it came from.
      const [at, mt] = this.times(h);
      fs.lutimesSync(op, at, mt);
      return;
    }

    const mode = h.mode & 0o7777;
    switch (t) {
      case '0':
        this.createReplacing(prel, () => {
          this.fd = fs.openSync(p, CREATE_FLAGS, 0o600);
        });
        this.cur = { h, rel: prel, p, written: 0 };
        return;
      case '5': {
        try {
          fs.mkdirSync(p, 0o700);
        } catch (e) {
          if (errnoCode(e) !== 'EEXIST') throw e;
          if (!fs.lstatSync(p).isDirectory()) {
            this.remove(prel);
            fs.mkdirSync(p, 0o700);
          }
        }
        this.cache.add(prel);
        fs.lchownSync(p, h.uid, h.gid);
        this.setXattrs(h, p);
        fs.chmodSync(p, mode);
        const [atime, mtime] = this.times(h);
        this.dirs.push({ rel: prel, atime, mtime, name: h.name });
        return;
      }
      case '2': {
        const target = Buffer.from(h.linkname, 'latin1');
        this.createReplacing(prel, () => fs.symlinkSync(target, p));
        this.symlinkBytes += target.length;
        fs.lchownSync(p, h.uid, h.gid);
        this.setXattrs(h, p);
        const [at, mt] = this.times(h);
        fs.lutimesSync(p, at, mt);
        return;
      }
      case '1': {
        const lclean = cleanPath(h.linkname);
        const bad = (why: string) => invalidArgument(`invalid hardlink ${q(h.name)} -> ${q(h.linkname)}: ${why}`);
        if (lclean === '..' || lclean.startsWith('../')) throw bad('target is outside of the layer');
        const lrel = lclean.replace(/^\/+/, '');
        if (lrel === '' || lrel === '.') throw bad('target is the layer root');
        const ls = lrel.lastIndexOf('/');
        const lparent = resolveDir(this.dest, ls < 0 ? [] : lrel.slice(0, ls).split('/'), {
          cache: this.cache,
          entry: h.linkname,
        });
        if (lparent === null) throw bad('target does not exist in the layer');
        const lbase = lrel.slice(ls + 1);
        const tp = this.p(lparent ? `${lparent}/${lbase}` : lbase);
        let tst: fs.Stats;
        try {
          tst = fs.lstatSync(tp);
        } catch {
          throw bad('target does not exist in the layer');
        }
        if (tst.isDirectory()) throw bad('target is a directory');
        this.createReplacing(prel, () => fs.linkSync(tp, p));
        fs.lchownSync(p, h.uid, h.gid);
        this.setXattrs(h, p);
        if (!tst.isSymbolicLink()) {
          fs.chmodSync(p, mode);
          const [at, mt] = this.times(h);
          fs.lutimesSync(p, at, mt);
        }
        return;
      }
      default: {
        const type = t === '3' ? S_IFCHR : t === '4' ? S_IFBLK : S_IFIFO;
        const [maj, min] = t === '6' ? [0, 0] : [h.devmajor, h.devminor];
        this.createReplacing(prel, () => mknodAny(p, type | mode, maj, min));
        fs.lchownSync(p, h.uid, h.gid);
        this.setXattrs(h, p);
        fs.chmodSync(p, mode);
        const [at, mt] = this.times(h);
        fs.lutimesSync(p, at, mt);
        return;
      }
    }
  }

  /** go-archive's checks and wording: "<dest>/<entry>" and dest as shownDest. */
  private refuseDirNonDir(p: string | Buffer, rel: string, isDir: boolean): void {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return;
      throw e;
    }
    const name = JSON.stringify(`${this.shownDest.replace(/\/+$/, '')}/${Buffer.from(rel, 'latin1').toString('utf8')}`);
    const dest = JSON.stringify(this.shownDest);
    if (st.isDirectory() && !isDir)
      throw new NoOverwriteError(`cannot overwrite directory ${name} with non-directory ${dest}`);
    if (!st.isDirectory() && isDir)
      throw new NoOverwriteError(`cannot overwrite non-directory ${name} with directory ${dest}`);
  }

  data(buf: Buffer): void {
    if (this.fd < 0) return;
    let off = 0;
    while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
    this.cur!.written += buf.length;
  }

  end(): void {
    if (this.fd < 0) return;
    const { h, p, written } = this.cur!;
    const fd = this.fd;
    this.fd = -1;
    try {
      fs.fchownSync(fd, h.uid, h.gid);
      if (h.xattrs.size) this.setXattrs(h, p);
      fs.fchmodSync(fd, h.mode & 0o7777);
      const [at, mt] = this.times(h);
      fs.futimesSync(fd, at, mt);
    } finally {
      fs.closeSync(fd);
    }
    this.regularBytes += written;
  }

  abort(): void {
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {}
      this.fd = -1;
    }
  }

  /** Directory mtimes last (creating entries in them changes them), re-resolved safely. */
  finishDirs(): void {
    for (const d of this.dirs) {
      const parts = d.rel.split('/');
      const base = parts.pop()!;
      const parent = resolveDir(this.dest, parts, { cache: this.cache, entry: d.name });
      if (parent === null || (parent ? `${parent}/${base}` : base) !== d.rel) continue;
      const p = this.p(d.rel);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) fs.lutimesSync(p, d.atime, d.mtime);
    }
  }

  /** moby's directory.Size: non-directories with st_size > 0, each inode once. */
  size(): number {
    if (!this.dirty) return this.regularBytes + this.symlinkBytes;
    return directorySize(this.dest);
  }
}

export function directorySize(root: string): number {
  const seen = new Set<number | bigint>();
  let total = 0;
  const walk = (dir: Buffer) => {
    for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      const st = fs.lstatSync(p, { bigint: true });
      if (st.isDirectory()) {
        walk(p);
        continue;
      }
      if (st.size === 0n || seen.has(st.ino)) continue;
      seen.add(st.ino);
      total += Number(st.size);
    }
  };
  walk(Buffer.from(root));
  return total;
}

function describe(e: unknown, h: TarHeader | undefined): Error {
  if (e instanceof BerthError) return e;
  const code = errnoCode(e);
  const what = h ? ` while extracting ${q(h.name)}` : '';
  const msg = `${(e as Error)?.message ?? String(e)}${what}`;
  if (code && INPUT_ERRNOS.has(code)) return invalidArgument(msg, e);
  return new BerthError('internal', msg, { cause: e });
}

export async function applyLayer(tar: Readable, dest: string, opts: ApplyOptions): Promise<ApplyResult> {
  const x = new Extractor(
    dest.replace(/\/+$/, '') || '/',
    opts.whiteouts,
    opts.allowDevices,
    opts.noOverwriteDirNonDir,
    opts.shownDest,
  );
  const owner = opts.chown;
  const hash = createHash('sha256');
  const ts = opts.tarSplitPath ? new TarSplitWriter(opts.tarSplitPath) : undefined;
  const seen = ts ? new Set<string>() : undefined;
  let tarSize = 0;
  let curHeader: TarHeader | undefined;
  let crc: bigint | null = null;
  const sink: TarSink = {
    entry(h, raw) {
      curHeader = h;
      if (ts) {
        ts.segment(raw);
        const key = cleanPath(`/${h.name}`);
        if (seen!.has(key)) throw invalidArgument(`duplicates of file paths not supported: ${q(h.name)}`);
        seen!.add(key);
      }
      crc = h.size > 0 ? 0n : null;
      x.begin(owner ? { ...h, uid: owner.uid, gid: owner.gid } : h);
    },
    data(buf) {
      if (crc !== null) crc = native.crc64(buf, crc);
      x.data(buf);
    },
    entryEnd() {
      x.end();
      ts?.file(curHeader!.name, curHeader!.size, crc);
    },
    end(raw) {
      ts?.segment(raw);
    },
    trailing(buf) {
      ts?.segment(buf);
    },
  };
  const parser = new TarParser(sink);
  try {
    if (opts.signal?.aborted) throw new BerthError('cancelled', 'layer extraction cancelled');
    for await (const chunk of tar as AsyncIterable<Buffer>) {
      if (opts.signal?.aborted) throw new BerthError('cancelled', 'layer extraction cancelled');
      hash.update(chunk);
      tarSize += chunk.length;
      parser.write(chunk);
      if (ts) await ts.drain();
    }
    parser.finish();
    x.finishDirs();
    if (ts) await ts.commit();
  } catch (e) {
    x.abort();
    await ts?.abort();
    tar.destroy();
    throw describe(e, curHeader);
  }
  return { diffId: `sha256:${hash.digest('hex')}` as Digest, tarSize, size: x.size() };
}
