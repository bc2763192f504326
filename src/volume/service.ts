// VolumeService: create / get / list / remove / prune over the drivers (only
// `local` here), with per-container reference counting (moby volume/service).
import fs from 'node:fs';
import path from 'node:path';
import { conflict, invalidArgument, notFound } from '../errors/index.js';
import { LocalDriver, type LocalVolume, randomVolumeName } from './local.js';

/** `docker volume inspect` / GET /volumes/{name}. */
export interface VolumeInfo {
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: 'local';
  UsageData?: { Size: number; RefCount: number };
}

export interface CreateVolumeOptions {
  name?: string;
  driver?: string;
  driverOpts?: Record<string, string>;
  labels?: Record<string, string>;
  /** Created for an image VOLUME / `-v /path` (berth marks it; moby 20.10 does not). */
  anonymous?: boolean;
}

export interface VolumeFilters {
  dangling?: boolean;
  name?: string[];
  driver?: string[];
  /** `key` or `key=value`. */
  label?: string[];
}

export class VolumeService {
  /** volume name → container IDs holding a reference. */
  private readonly refs = new Map<string, Set<string>>();

  private constructor(readonly local: LocalDriver) {}

  static open(dataRoot: string): VolumeService {
    return new VolumeService(LocalDriver.open(dataRoot));
  }

  private driver(name: string | undefined): LocalDriver {
    if (name && name !== 'local') throw notFound(`plugin "${name}" not found`);
    return this.local;
  }

  create(opts: CreateVolumeOptions = {}): VolumeInfo {
    const d = this.driver(opts.driver);
    const name = opts.name || randomVolumeName();
    const v = d.create(name, opts.driverOpts ?? {}, opts.labels ?? null, opts.anonymous || !opts.name);
    return this.info(v);
  }

  get(name: string): VolumeInfo {
    const v = this.local.get(name);
    return this.info(v);
  }

  /** Path of the volume's data, mounting it for `containerId` (takes a reference). */
  mount(name: string, containerId: string): string {
    const p = this.local.mount(name);
    this.acquire(name, containerId);
    return p;
  }

  unmount(name: string, containerId: string): void {
    if (this.refs.get(name)?.has(containerId) && this.local.isMounted(name)) this.local.unmount(name);
  }

  /** Records that `containerId` uses the volume (moby: reference by container ID, not persisted). */
  acquire(name: string, containerId: string): void {
    this.local.get(name);
    let s = this.refs.get(name);
    if (!s) {
      s = new Set();
      this.refs.set(name, s);
    }
    s.add(containerId);
  }

  release(name: string, containerId: string): void {
    const s = this.refs.get(name);
    if (!s) return;
    s.delete(containerId);
    if (s.size === 0) this.refs.delete(name);
  }

  usedBy(name: string): string[] {
    return [...(this.refs.get(name) ?? [])];
  }

  list(filters: VolumeFilters = {}): VolumeInfo[] {
    return this.local
      .list()
      .filter((v) => this.matches(v, filters))
      .map((v) => this.info(v))
      .sort((a, b) => (a.Name < b.Name ? -1 : 1));
  }

  private matches(v: LocalVolume, f: VolumeFilters): boolean {
    if (f.dangling !== undefined && f.dangling === this.usedBy(v.name).length > 0) return false;
    if (f.name?.length && !f.name.some((n) => v.name.includes(n))) return false;
    if (f.driver?.length && !f.driver.includes('local')) return false;
    if (f.label?.length) {
      const labels = v.meta.Labels ?? {};
      for (const l of f.label) {
        const i = l.indexOf('=');
        if (i < 0 ? !(l in labels) : labels[l.slice(0, i)] !== l.slice(i + 1)) return false;
      }
    }
    return true;
  }

  /** Removes a volume; refuses while containers use it (dockerd's text), unless force removes nothing in use either. */
  remove(name: string, opts: { force?: boolean } = {}): void {
    if (!this.local.has(name)) {
      if (opts.force) return;
      throw notFound(`get ${name}: no such volume`);
    }
    const users = this.usedBy(name);
    if (users.length) throw conflict(`remove ${name}: volume is in use - [${users.join(', ')}]`);
    this.local.remove(name);
    this.refs.delete(name);
  }

  /** Removes unused volumes (20.10: named and anonymous); returns names and bytes reclaimed. */
  prune(filters: Omit<VolumeFilters, 'dangling'> = {}): { VolumesDeleted: string[]; SpaceReclaimed: number } {
    const deleted: string[] = [];
    let space = 0;
    for (const v of this.local.list()) {
      if (this.usedBy(v.name).length || !this.matches(v, filters)) continue;
      const size = this.local.size(v.name);
      this.local.remove(v.name);
      deleted.push(v.name);
      space += size;
    }
    return { VolumesDeleted: deleted, SpaceReclaimed: space };
  }

  info(v: LocalVolume): VolumeInfo {
    return {
      CreatedAt: v.meta.CreatedAt,
      Driver: 'local',
      Labels: v.meta.Labels,
      Mountpoint: v.path,
      Name: v.name,
      Options: v.meta.Options,
      Scope: 'local',
    };
  }

  isAnonymous(name: string): boolean {
    return !!this.local.get(name).meta.Anonymous;
  }
}

/**
 * Copies the image's content at `srcDir` (a path in the container rootfs) into
 * an empty volume directory, keeping modes, ownership, times and symlinks, as
 * moby does on the first mount of a new volume. Returns false when there was
 * nothing to copy (source missing or volume not empty).
 */
export function copyUp(srcDir: string, volumeData: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(srcDir);
  } catch {
    return false;
  }
  if (!st.isDirectory()) return false;
  if (fs.readdirSync(volumeData).length > 0) return false;
  copyTree(srcDir, volumeData);
  // the volume root takes the image directory's mode and owner
  fs.chmodSync(volumeData, st.mode & 0o7777);
  fs.chownSync(volumeData, st.uid, st.gid);
  return true;
}

function copyTree(src: string, dst: string): void {
  for (const e of fs.readdirSync(src)) {
    const s = path.join(src, e);
    const d = path.join(dst, e);
    const st = fs.lstatSync(s);
    if (st.isDirectory()) {
      fs.mkdirSync(d);
      copyTree(s, d);
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(s), d);
    } else if (st.isFile()) {
      fs.copyFileSync(s, d);
    } else {
      continue; // devices, fifos and sockets are not copied
    }
    if (!st.isSymbolicLink()) fs.chmodSync(d, st.mode & 0o7777);
    fs.lchownSync(d, st.uid, st.gid);
    if (!st.isSymbolicLink()) fs.utimesSync(d, st.atime, st.mtime);
  }
}

export function assertVolumeName(name: string): void {
  if (!name) throw invalidArgument('volume name must not be empty');
}
