// A container and its files under `<data-root>/containers/<id>/`, with moby's
// modes: the directory 0710, config.v2.json 0600, hostconfig.json 0644,
// checkpoints/ 0700, mounts/ 0710 (moby idtools with the remapped root GID).
import fs from 'node:fs';
import path from 'node:path';
import { internal, invalidArgument } from '../errors/index.js';
import { atomicWriteFileSync } from '../fsutil/index.js';
import {
  type ContainerConfig,
  type ContainerJSON,
  canonicalConfig,
  canonicalHostConfig,
  emptyNetworkSettings,
  type HostConfig,
  initialState,
  type MountPoint,
  type NetworkSettings,
  type State,
} from './types.js';

export const CONFIG_FILE = 'config.v2.json';
export const HOSTCONFIG_FILE = 'hostconfig.json';
const ID_RE = /^[a-f0-9]{64}$/;

export class Container {
  /** ensureDirs() ran (the directories are not removed while the container exists). */
  #dirsMade = false;
  ID: string;
  Created: string;
  Managed = false;
  Path = '';
  Args: string[] = [];
  Config: ContainerConfig = {};
  /** Image ID (sha256:…). */
  Image = '';
  NetworkSettings: NetworkSettings = emptyNetworkSettings();
  LogPath = '';
  Name = '';
  Driver = 'overlay2';
  OS = 'linux';
  MountLabel = '';
  ProcessLabel = '';
  RestartCount = 0;
  HasBeenStartedBefore = false;
  HasBeenManuallyStopped = false;
  MountPoints: Record<string, MountPoint> = {};
  SecretReferences: unknown[] | null = null;
  ConfigReferences: unknown[] | null = null;
  AppArmorProfile = '';
  HostnamePath = '';
  HostsPath = '';
  ShmPath = '';
  ResolvConfPath = '';
  SeccompProfile = '';
  NoNewPrivileges = false;
  HostConfig: HostConfig = {};
  /** Only the state machine (state.ts) mutates this. */
  readonly State: State = initialState();
  /** Where this container's files live (`<data-root>/containers/<id>`). */
  readonly root: string;

  constructor(containersDir: string, id: string, created: string) {
    if (!ID_RE.test(id)) throw invalidArgument(`invalid container ID ${JSON.stringify(id)}`);
    this.ID = id;
    this.Created = created;
    this.root = path.join(containersDir, id);
  }

  /** The config.v2.json document (key order as dockerd writes it). */
  toJSON(): ContainerJSON {
    return {
      StreamConfig: {},
      State: { ...this.State },
      ID: this.ID,
      Created: this.Created,
      Managed: this.Managed,
      Path: this.Path,
      Args: this.Args,
      Config: canonicalConfig(this.Config),
      Image: this.Image,
      NetworkSettings: this.NetworkSettings,
      LogPath: this.LogPath,
      Name: this.Name,
      Driver: this.Driver,
      OS: this.OS,
      MountLabel: this.MountLabel,
      ProcessLabel: this.ProcessLabel,
      RestartCount: this.RestartCount,
      HasBeenStartedBefore: this.HasBeenStartedBefore,
      HasBeenManuallyStopped: this.HasBeenManuallyStopped,
      MountPoints: Object.fromEntries(
        Object.entries(this.MountPoints).map(([k, m]) => {
          const { CopyData: _c, ...rest } = m;
          return [k, rest];
        }),
      ),
      SecretReferences: this.SecretReferences,
      ConfigReferences: this.ConfigReferences,
      AppArmorProfile: this.AppArmorProfile,
      HostnamePath: this.HostnamePath,
      HostsPath: this.HostsPath,
      ShmPath: this.ShmPath,
      ResolvConfPath: this.ResolvConfPath,
      SeccompProfile: this.SeccompProfile,
      NoNewPrivileges: this.NoNewPrivileges,
      LocalLogCacheMeta: { HaveNotifyEnabled: false },
    };
  }

  path(...parts: string[]): string {
    return path.join(this.root, ...parts);
  }

  /** Creates the container directory tree (idempotent). */
  ensureDirs(): void {
    if (this.#dirsMade) return;
    fs.mkdirSync(this.root, { recursive: true, mode: 0o710 });
    fs.chmodSync(this.root, 0o710);
    fs.mkdirSync(this.path('checkpoints'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.path('mounts'), { recursive: true, mode: 0o710 });
    this.#dirsMade = true;
  }

  /** Writes config.v2.json (0600) and hostconfig.json (0644) atomically. */
  /** `sync: false` for state a crash may lose (it is rebuilt from the shim and runtime at restore). */
  /** `stateOnly`: the host config has not changed (a start): only config.v2.json is written. */
  toDisk(opts: { sync?: boolean; stateOnly?: boolean } = {}): void {
    this.ensureDirs();
    // like moby's AtomicWriteFile: the file is synced, the directory is not
    atomicWriteFileSync(this.path(CONFIG_FILE), JSON.stringify(this.toJSON()), {
      mode: 0o600,
      syncDir: false,
      sync: opts.sync !== false,
    });
    if (!opts.stateOnly) this.writeHostConfig(opts);
  }

  writeHostConfig(opts: { sync?: boolean } = {}): void {
    atomicWriteFileSync(this.path(HOSTCONFIG_FILE), JSON.stringify(canonicalHostConfig(this.HostConfig)), {
      mode: 0o644,
      syncDir: false,
      sync: opts.sync !== false,
    });
  }

  /** Reads a container back from its directory. */
  static fromDisk(containersDir: string, id: string): Container {
    const dir = path.join(containersDir, id);
    let j: ContainerJSON;
    try {
      j = JSON.parse(fs.readFileSync(path.join(dir, CONFIG_FILE), 'utf8')) as ContainerJSON;
    } catch (e) {
      throw internal(`error loading container ${id}: ${(e as Error).message}`, e);
    }
    if (j.ID !== id) throw internal(`container ${id}: config.v2.json holds ID ${j.ID}`);
    const c = new Container(containersDir, id, j.Created);
    const { State: st, StreamConfig: _s, LocalLogCacheMeta: _l, ID: _i, Created: _c, ...rest } = j;
    Object.assign(c, rest);
    Object.assign(c.State, st);
    try {
      c.HostConfig = JSON.parse(fs.readFileSync(path.join(dir, HOSTCONFIG_FILE), 'utf8')) as HostConfig;
    } catch {
      c.HostConfig = {};
    }
    for (const m of Object.values(c.MountPoints)) if (m.Type === 'volume') m.CopyData ??= false;
    return c;
  }

  /** Files whose paths dockerd records (used by the spec builder's network mounts). */
  setNetworkFilePaths(): void {
    this.HostnamePath = this.path('hostname');
    this.HostsPath = this.path('hosts');
    this.ResolvConfPath = this.path('resolv.conf');
  }

  /** `docker ps` Names entry / inspect Name: "/name". */
  get shortId(): string {
    return this.ID.slice(0, 12);
  }
}
