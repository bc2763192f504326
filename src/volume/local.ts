// The `local` volume driver: `<data-root>/volumes/<name>/_data`, with the
// `type`/`device`/`o` options of moby's volume/local driver (mounted on first
// use, unmounted on last release). Options persist in `volumes/<name>/opts.json`
// as moby's local driver does; labels and creation metadata (moby keeps them in
// volumes/metadata.db, a bolt database) are kept in `volumes/<name>/berth.json`.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { errnoCode, internal, invalidArgument, notFound } from '../errors/index.js';
import { atomicWriteFileSync } from '../fsutil/index.js';
import { native } from '../native/index.js';

export const VOLUME_DATA = '_data';
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const NAME_CHARS = '[a-zA-Z0-9][a-zA-Z0-9_.-]';
const VALID_OPTS = new Set(['type', 'device', 'o']);
const MANDATORY: Record<string, string[]> = { device: ['type'], type: ['device'], o: ['device', 'type'] };

export interface VolumeMeta {
  CreatedAt: string;
  Labels: Record<string, string> | null;
  Options: Record<string, string> | null;
  /** berth: true for volumes created for an image VOLUME or -v /path without a name. */
  Anonymous?: boolean;
}

export interface LocalVolume {
  name: string;
  driverName: 'local';
  /** The data directory (`_data`). */
  path: string;
  meta: VolumeMeta;
}

/** Mount flags by option name, as moby's pkg/mount flag table (data options pass through). */
const FLAGS: Record<string, [number, boolean]> = {
  defaults: [0, false],
  ro: [1, false],
  rw: [1, true],
  suid: [2, true],
  nosuid: [2, false],
  dev: [4, true],
  nodev: [4, false],
  exec: [8, true],
  noexec: [8, false],
  sync: [16, false],
  async: [16, true],
  dirsync: [128, false],
  remount: [32, false],
  mand: [64, false],
  nomand: [64, true],
  atime: [1024, true],
  noatime: [1024, false],
  diratime: [2048, true],
  nodiratime: [2048, false],
  bind: [4096, false],
  rbind: [4096 | 16384, false],
  relatime: [1 << 21, false],
  norelatime: [1 << 21, true],
  strictatime: [1 << 24, false],
  nostrictatime: [1 << 24, true],
};

/** Splits a mount option string into MS_* flags and the data string (moby mount.parseOptions). */
export function parseMountOptions(o: string): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const opt of o.split(',').filter(Boolean)) {
    const f = FLAGS[opt];
    if (f) {
      if (f[1]) flags &= ~f[0];
      else flags |= f[0];
    } else data.push(opt);
  }
  return { flags, data: data.join(',') };
}

export function validateVolumeName(name: string): void {
  if (name.length === 1)
    throw invalidArgument('volume name is too short, names should be at least two alphanumeric characters');
  if (!NAME_RE.test(name))
    throw invalidArgument(
      `"${name}" includes invalid characters for a local volume name, only "${NAME_CHARS}" are allowed. If you intended to pass a host directory, use absolute path`,
    );
}

export function validateVolumeOpts(opts: Record<string, string>): void {
  const keys = Object.keys(opts);
  if (keys.length === 0) return;
  for (const k of keys) if (!VALID_OPTS.has(k)) throw invalidArgument(`invalid option key: "${k}"`);
  for (const [k, reqs] of Object.entries(MANDATORY)) {
    if (!(k in opts)) continue;
    for (const r of reqs) if (!(r in opts)) throw invalidArgument(`missing required option: "${r}"`);
  }
  if (opts.type === 'bind' || /(^|,)r?bind(,|$)/.test(opts.o ?? '')) {
    if (!opts.device?.startsWith('/')) throw invalidArgument(`invalid device for bind volume: "${opts.device ?? ''}"`);
  }
}

function rfc3339Seconds(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

/** Prefix of a volume directory being deleted (swept at start). */
const REMOVING_PREFIX = '.removing-';

export class LocalDriver {
  readonly name = 'local';
  private readonly volumes = new Map<string, LocalVolume>();
  /** Active mounts per volume (for volumes with a `type`/`device`). */
  private readonly active = new Map<string, number>();

  private constructor(readonly root: string) {}

  /** Opens `<dataRoot>/volumes` (0701 like moby) and loads every volume directory. */
  static open(dataRoot: string): LocalDriver {
    const root = path.join(dataRoot, 'volumes');
    fs.mkdirSync(root, { recursive: true, mode: 0o701 });
    fs.chmodSync(root, 0o701);
    const d = new LocalDriver(root);
    for (const e of fs.readdirSync(root, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      if (e.name.startsWith(REMOVING_PREFIX)) {
        // a removal a crash interrupted (volume names cannot start with ".")
        fs.rmSync(path.join(root, e.name), { recursive: true, force: true });
        continue;
      }
      d.volumes.set(e.name, d.load(e.name));
    }
    return d;
  }

  private load(name: string): LocalVolume {
    const dir = path.join(this.root, name);
    let meta: VolumeMeta;
    try {
      meta = JSON.parse(fs.readFileSync(path.join(dir, 'berth.json'), 'utf8')) as VolumeMeta;
    } catch {
      meta = { CreatedAt: rfc3339Seconds(fs.statSync(dir).mtime), Labels: null, Options: null };
    }
    try {
      meta.Options = JSON.parse(fs.readFileSync(path.join(dir, 'opts.json'), 'utf8')) as Record<string, string>;
    } catch {
      // no options
    }
    return { name, driverName: 'local', path: path.join(dir, VOLUME_DATA), meta };
  }

  dataPath(name: string): string {
    return path.join(this.root, name, VOLUME_DATA);
  }

  create(
    name: string,
    opts: Record<string, string> = {},
    labels: Record<string, string> | null = null,
    anonymous = false,
  ): LocalVolume {
    validateVolumeName(name);
    validateVolumeOpts(opts);
    const existing = this.volumes.get(name);
    if (existing) return existing;
    const dir = path.join(this.root, name);
    fs.mkdirSync(dir, { mode: 0o701 });
    fs.chmodSync(dir, 0o701);
    fs.mkdirSync(path.join(dir, VOLUME_DATA), { mode: 0o755 });
    fs.chmodSync(path.join(dir, VOLUME_DATA), 0o755);
    const hasOpts = Object.keys(opts).length > 0;
    if (hasOpts) atomicWriteFileSync(path.join(dir, 'opts.json'), JSON.stringify(opts), { mode: 0o600 });
    const meta: VolumeMeta = {
      CreatedAt: rfc3339Seconds(new Date()),
      Labels: labels && Object.keys(labels).length ? labels : labels ? {} : null,
      Options: hasOpts ? opts : null,
      ...(anonymous ? { Anonymous: true } : {}),
    };
    // An anonymous volume's metadata is not fsynced (~5 ms per docker run of an
    // image with a VOLUME): a crash that loses it leaves the volume, its data
    // and its name; only CreatedAt then comes from the directory (see load).
    atomicWriteFileSync(path.join(dir, 'berth.json'), JSON.stringify(meta), {
      mode: 0o600,
      ...(anonymous ? { sync: false, syncDir: false } : {}),
    });
    const v: LocalVolume = { name, driverName: 'local', path: path.join(dir, VOLUME_DATA), meta };
    this.volumes.set(name, v);
    return v;
  }

  get(name: string): LocalVolume {
    const v = this.volumes.get(name);
    if (!v) throw notFound(`get ${name}: no such volume`);
    return v;
  }

  has(name: string): boolean {
    return this.volumes.has(name);
  }

  list(): LocalVolume[] {
    return [...this.volumes.values()];
  }

  /** Mounts a volume with options (no-op for plain directories); returns the data path. */
  mount(name: string): string {
    const v = this.get(name);
    const o = v.meta.Options;
    if (o?.type || o?.device) {
      const n = this.active.get(name) ?? 0;
      if (n === 0) {
        if (!o.device) throw invalidArgument('missing device in volume options');
        const { flags, data } = parseMountOptions(o.o ?? '');
        try {
          native.mount(o.device, v.path, o.type ?? 'none', flags, data);
        } catch (e) {
          throw internal(`failed to mount local volume: ${(e as Error).message}`, e);
        }
      }
      this.active.set(name, n + 1);
    }
    return v.path;
  }

  unmount(name: string): void {
    const n = this.active.get(name);
    if (!n) return;
    if (n === 1) {
      this.active.delete(name);
      try {
        native.umount2(this.get(name).path, 2 /* MNT_DETACH */);
      } catch (e) {
        if (errnoCode(e) !== 'EINVAL') throw internal(`error while unmounting volume path: ${(e as Error).message}`, e);
      }
    } else this.active.set(name, n - 1);
  }

  isMounted(name: string): boolean {
    return (this.active.get(name) ?? 0) > 0;
  }

  remove(name: string): void {
    const v = this.get(name);
    if (this.active.get(name)) {
      this.active.set(name, 1);
      this.unmount(name);
    }
    const dir = path.dirname(v.path);
    const real = fs.realpathSync.native(dir);
    if (!real.startsWith(`${fs.realpathSync.native(this.root)}/`))
      throw internal(`Unable to remove a directory outside of the local volume root ${this.root}: ${real}`);
    // Renamed away at once (the name is free again), deleted in the background:
    // a volume can hold gigabytes, and the event loop must not wait for them.
    const doomed = path.join(this.root, `${REMOVING_PREFIX}${name}-${randomBytes(4).toString('hex')}`);
    fs.renameSync(real, doomed);
    this.volumes.delete(name);
    fs.promises.rm(doomed, { recursive: true, force: true }).catch(() => {
      // swept at the next start
    });
  }

  /** Bytes used by the volume's data (du-like, no hard-link dedup). */
  size(name: string): number {
    let total = 0;
    const walk = (p: string) => {
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        return;
      }
      total += st.blocks * 512;
      if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    };
    walk(this.get(name).path);
    return total;
  }
}

export function randomVolumeName(): string {
  return randomBytes(32).toString('hex');
}
