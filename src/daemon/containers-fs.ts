// A container's filesystem (moby daemon/archive.go, changes.go, export.go,
// commit.go): `docker cp` both ways, `docker diff`, `docker export`,
// `docker commit`. Paths given by the client are resolved INSIDE the
// container's root like a chroot would (CVE-2018-15664): every component,
// symlinks included, stays under the root; the directory finally used is
// opened once and checked through /proc/self/fd, and tar/extraction work on
// that open descriptor, so a symlink swapped in meanwhile cannot redirect them.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { applyLayer, exportDiff, NoOverwriteError } from '../archive/index.js';
import { resolveDir } from '../archive/paths.js';
import { type Container, canonicalConfig, rfc3339Nano } from '../container/index.js';
import { BerthError, invalidArgument, notFound } from '../errors/index.js';
import type { ImageId } from '../image/index.js';
import {
  chainId,
  type Digest,
  familiarString,
  parseNormalizedReference,
  type Reference,
  withDefaultTag,
} from '../oci/index.js';
import { parsePasswd } from '../runtime/spec/index.js';
import { applyChanges } from './changes.js';
import type { ContainersCore } from './containers-core.js';
import { BERTH_VERSION, GOARCH } from './system.js';

const forbidden = (m: string) => new BerthError('forbidden', m);
const EMPTY_LAYER_DIFF = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

/** Go's os.FileMode bits for a stat mode (what X-Docker-Container-Path-Stat carries). */
function goFileMode(st: fs.Stats): number {
  let m = st.mode & 0o777;
  if (st.mode & 0o4000) m |= 1 << 23; // setuid
  if (st.mode & 0o2000) m |= 1 << 22; // setgid
  if (st.mode & 0o1000) m |= 1 << 20; // sticky
  if (st.isDirectory()) m |= 2 ** 31;
  else if (st.isSymbolicLink()) m |= 1 << 27;
  else if (st.isFIFO()) m |= 1 << 25;
  else if (st.isSocket()) m |= 1 << 24;
  else if (st.isCharacterDevice()) m |= (1 << 26) | (1 << 21);
  else if (st.isBlockDevice()) m |= 1 << 26;
  return m >>> 0;
}

export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

interface Resolved {
  /** An open descriptor of the directory holding the entry (checked to be inside the root). */
  dirFd: number;
  /** The entry's name in that directory ('' for the directory itself). */
  base: string;
  stat: PathStat;
  /** The directory's path in the container, symlinks resolved (what dockerd names in untar errors). */
  dirInContainer: string;
  release: () => Promise<void>;
}

/**
 * The uid/gid `docker cp -a` gives extracted files for a container with a
 * Config.User, as dockerd 20.10 computes it (idtools.LookupUser): the whole
 * user string is looked up as a name in the HOST's /etc/passwd, then with
 * `getent passwd` (which also takes a numeric uid); the container's own
 * /etc/passwd is not read, and "user:group" forms are not split. Errors are
 * moby's wording, as a 500 (plain error in moby).
 */
async function lookupHostUser(user: string): Promise<{ uid: number; gid: number }> {
  const parse = (text: string, byName: boolean) => {
    const e = parsePasswd(text.split('\n')).find(
      (x) => (!byName || x.name === user) && Number.isInteger(x.uid) && Number.isInteger(x.gid),
    );
    return e && { uid: e.uid, gid: e.gid };
  };
  try {
    const local = parse(fs.readFileSync('/etc/passwd', 'utf8'), true);
    if (local) return local;
  } catch {
    // no /etc/passwd: getent decides
  }
  const r = await new Promise<{ status: number | string | null; stdout: string; error?: Error }>((resolve) => {
    execFile('getent', ['passwd', user], { timeout: 10_000 }, (error, stdout) => {
      const code = (error as (Error & { code?: number | string }) | null)?.code;
      resolve({ status: error ? (code ?? null) : 0, stdout, ...(error && code === 'ENOENT' ? { error } : {}) });
    });
  });
  if (r.error) throw new BerthError('internal', 'unable to find getent command', { cause: r.error });
  if (r.status === 1) throw new BerthError('internal', 'getent reported invalid parameters/database unknown');
  if (r.status === 2)
    throw new BerthError('internal', `getent unable to find entry ${JSON.stringify(user)} in passwd database`);
  if (r.status === 3) throw new BerthError('internal', "getent database doesn't support enumeration");
  if (r.status !== 0) throw new BerthError('internal', `exit status ${r.status}`);
  const found = parse(r.stdout, false);
  if (!found) throw new BerthError('internal', `getent failed to find passwd entry for ${JSON.stringify(user)}`);
  return found;
}

export class ContainerFs {
  constructor(private readonly core: ContainersCore) {}

  /** The container root (mounted for the duration) and the volume/bind mounts by destination. */
  private async rootOf(
    c: Container,
  ): Promise<{ root: string; mounts: Array<[string, string]>; release: () => Promise<void> }> {
    const task = this.core.tasks.get(c.ID);
    const rw = this.core.d.layers.getRWLayer(c.ID);
    const root = task?.rootfs ?? (await rw.mount());
    const release = task ? async () => {} : () => rw.unmount();
    const mounts: Array<[string, string]> = [];
    for (const mp of Object.values(c.MountPoints)) {
      if (mp.Type === 'bind' && mp.Source) mounts.push([mp.Destination, mp.Source]);
      else if (mp.Type === 'volume' && mp.Name && this.core.d.volumes.local.has(mp.Name))
        mounts.push([mp.Destination, this.core.d.volumes.local.dataPath(mp.Name)]);
    }
    mounts.sort((a, b) => b[0].length - a[0].length);
    return { root, mounts, release };
  }

  /** Resolves `p` (absolute in the container) with chroot semantics; `follow` also follows a final symlink. */
  private async resolve(c: Container, p: string, follow: boolean): Promise<Resolved> {
    const { root, mounts, release } = await this.rootOf(c);
    try {
      const clean = path.posix.normalize(`/${p}`);
      let base = root;
      let rel = clean;
      let mountedAt = '';
      for (const [dest, src] of mounts) {
        if (clean === dest || clean.startsWith(`${dest}/`)) {
          base = src;
          rel = clean.slice(dest.length) || '/';
          mountedAt = dest;
          break;
        }
      }
      const parts = rel.split('/').filter((x) => x !== '' && x !== '.');
      const trailing = /\/\.$/.test(p) || follow;
      const name = trailing ? '' : (parts.pop() ?? '');
      const notFoundErr = () => notFound(`Could not find the file ${p} in container ${c.Name.replace(/^\//, '')}`);
      let dirRel: string | null;
      try {
        dirRel = resolveDir(base, parts, { entry: p });
      } catch (e) {
        if (e instanceof BerthError && /not a directory/.test(e.message)) throw notFoundErr();
        throw e;
      }
      if (dirRel === null) throw notFoundErr();
      const dirPath = dirRel ? `${base}/${dirRel}` : base;
      const fd = fs.openSync(dirPath, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
      const real = fs.readlinkSync(`/proc/self/fd/${fd}`);
      const baseReal = fs.realpathSync(base);
      if (real !== baseReal && !real.startsWith(`${baseReal}/`)) {
        fs.closeSync(fd);
        throw forbidden(`path ${p} resolves outside of the container's root`);
      }
      let st: fs.Stats;
      try {
        st = fs.lstatSync(name ? `/proc/self/fd/${fd}/${name}` : `/proc/self/fd/${fd}/.`);
      } catch {
        fs.closeSync(fd);
        throw notFoundErr();
      }
      let linkTarget = '';
      if (st.isSymbolicLink()) linkTarget = fs.readlinkSync(`/proc/self/fd/${fd}/${name}`);
      const stat: PathStat = {
        name: name || path.posix.basename(clean) || '/',
        size: st.size,
        mode: goFileMode(st),
        mtime: new Date(st.mtimeMs).toISOString().replace(/\.000Z$/, 'Z'),
        linkTarget,
      };
      return {
        dirFd: fd,
        base: name,
        stat,
        dirInContainer: `${mountedAt}${real.slice(baseReal.length)}` || '/',
        release: async () => {
          fs.closeSync(fd);
          await release();
        },
      };
    } catch (e) {
      await release();
      throw e;
    }
  }

  /** HEAD /containers/{id}/archive. */
  async statPath(ref: string, p: string): Promise<PathStat> {
    if (!p) throw invalidArgument('path cannot be empty');
    const c = this.core.get(ref);
    const r = await this.resolve(c, p, false);
    await r.release();
    return r.stat;
  }

  /** GET /containers/{id}/archive: the stat and a tar of the path (entries named by its base name). */
  async archive(ref: string, p: string): Promise<{ stat: PathStat; tar: Readable }> {
    if (!p) throw invalidArgument('path cannot be empty');
    const c = this.core.get(ref);
    const r = await this.resolve(c, p, false);
    const name = r.base || '.';
    const args = ['--numeric-owner', '-C', '/proc/self/fd/3', '-cf', '-', '--', name];
    if (!r.base) args.splice(args.length - 1, 1, '.');
    const child = spawn('tar', args, { stdio: ['ignore', 'pipe', 'pipe', r.dirFd] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const out = new PassThrough();
    child.stdout!.pipe(out, { end: false });
    child.on('close', (code) => {
      void r.release();
      if (code !== 0 && code !== 1) out.destroy(new Error(`tar: ${err.trim()}`));
      else out.end();
    });
    this.core.event(c, 'archive-path', { path: p });
    return { stat: r.stat, tar: out };
  }

  /** PUT /containers/{id}/archive: extracts a tar into a directory of the container. */
  async extract(
    ref: string,
    p: string,
    body: Readable,
    o: { noOverwriteDirNonDir: boolean; copyUIDGID: boolean },
  ): Promise<void> {
    if (!p) throw invalidArgument('path cannot be empty');
    const c = this.core.get(ref);
    const r = await this.resolve(c, p, true);
    try {
      if (!(r.stat.mode & (2 ** 31))) throw invalidArgument('extraction point is not a directory');
      const inVolume = Object.values(c.MountPoints).some(
        (m) => path.posix.normalize(`/${p}`).startsWith(m.Destination) && m.RW,
      );
      if (c.HostConfig.ReadonlyRootfs && !inVolume) throw forbidden('container rootfs is marked read-only');
      // moby tarCopyOptions: with copyUIDGID and a Config.User, every entry
      // is owned by that user (looked up as dockerd 20.10 does); otherwise
      // the tar's uid/gid are kept.
      const chown = o.copyUIDGID && c.Config.User ? await lookupHostUser(c.Config.User) : undefined;
      await applyLayer(body, `/proc/self/fd/${r.dirFd}`, {
        whiteouts: 'none',
        allowDevices: false,
        noOverwriteDirNonDir: o.noOverwriteDirNonDir,
        shownDest: r.dirInContainer,
        ...(chown ? { chown } : {}),
      });
    } catch (e) {
      // dockerd reports what its chrooted untar child printed, as a 500
      if (e instanceof NoOverwriteError)
        throw new BerthError('internal', `Error processing tar file(exit status 1): ${e.message}`, { cause: e });
      throw e;
    } finally {
      await r.release();
    }
    this.core.event(c, 'extract-to-dir', { path: p });
  }

  /** GET /containers/{id}/changes. */
  async changes(ref: string): Promise<Array<{ Path: string; Kind: number }>> {
    const c = this.core.get(ref);
    const list = await this.core.d.layers.getRWLayer(c.ID).changes();
    return list
      .map((x) => ({ Path: x.path, Kind: x.kind }))
      .sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
  }

  /** GET /containers/{id}/export: a tar of the whole root filesystem. */
  async export(ref: string): Promise<Readable> {
    const c = this.core.get(ref);
    const rw = this.core.d.layers.getRWLayer(c.ID);
    const root = await rw.mount();
    const s = exportDiff(root, { whiteouts: 'none' });
    let done = false;
    const fin = () => {
      if (done) return;
      done = true;
      void rw.unmount().catch(() => {});
    };
    s.once('end', fin);
    s.once('close', fin);
    s.once('error', fin);
    this.core.event(c, 'export');
    return s;
  }

  /** POST /commit (moby CreateImageFromContainer). */
  async commit(o: {
    container: string;
    repo?: string;
    tag?: string;
    comment?: string;
    author?: string;
    changes?: string[];
    pause?: boolean;
    config?: Record<string, unknown> | null;
  }): Promise<{ Id: string }> {
    const c = this.core.get(o.container);
    let ref: Reference | undefined;
    if (o.repo) {
      try {
        ref = withDefaultTag(parseNormalizedReference(o.tag ? `${o.repo}:${o.tag}` : o.repo));
      } catch (e) {
        throw invalidArgument((e as Error).message, e);
      }
    }
    const task = this.core.tasks.get(c.ID);
    const pause = o.pause !== false && !!task && !c.State.Paused;
    if (pause) await task!.runtime.pause(c.ID);
    const d = this.core.d;
    let layer: { chainId: Digest; diffId: Digest };
    try {
      const img = d.imageStore.get(c.Image as ImageId);
      const parentDiffs = (img.config.rootfs?.diff_ids ?? []) as Digest[];
      layer = await d.layers.register(d.layers.getRWLayer(c.ID).tarStream(), chainId(parentDiffs));
      try {
        const empty = layer.diffId === EMPTY_LAYER_DIFF;
        const base = { ...(c.toJSON().Config as Record<string, unknown>), ...(o.config ?? {}) };
        delete base.Hostname;
        const config = applyChanges(canonicalConfig(base) as Record<string, unknown>, o.changes ?? []);
        const created = rfc3339Nano();
        const hist: Record<string, unknown> = { created };
        if (o.author) hist.author = o.author;
        hist.created_by = c.Args.length ? `${c.Path} ${c.Args.join(' ')}` : c.Path;
        if (o.comment) hist.comment = o.comment;
        if (empty) hist.empty_layer = true;
        const cfg: Record<string, unknown> = {
          architecture: img.config.architecture || GOARCH,
          author: o.author || undefined,
          comment: o.comment || undefined,
          config: { ...config, Hostname: c.Config.Hostname ?? '' },
          container: c.ID,
          container_config: canonicalConfig(c.Config),
          created,
          docker_version: BERTH_VERSION,
          history: [...(img.config.history ?? []), hist],
          os: img.config.os || 'linux',
          rootfs: { type: 'layers', diff_ids: empty ? parentDiffs : [...parentDiffs, layer.diffId] },
          parent: c.Image,
        };
        const sorted: Record<string, unknown> = {};
        for (const k of Object.keys(cfg).sort()) if (cfg[k] !== undefined) sorted[k] = cfg[k];
        const id = d.imageStore.create(Buffer.from(JSON.stringify(sorted)));
        d.imageStore.setParent(id, c.Image as ImageId);
        if (ref) {
          d.refs.addTag(ref, id, true);
          d.imageStore.setLastUpdated(id);
          d.events.log('image', 'tag', { ID: id, Attributes: { name: familiarString(ref) } });
        }
        this.core.event(c, 'commit', {
          comment: o.comment ?? '',
          imageID: id,
          imageRef: ref ? familiarString(ref) : '',
        });
        return { Id: id };
      } finally {
        await d.layers.release(layer.chainId);
      }
    } finally {
      if (pause) await task!.runtime.resume(c.ID).catch(() => {});
    }
  }
}
