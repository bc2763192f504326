// ContainerCreator: POST /containers/create as dockerd 20.10 does it —
// validate, merge with the image, reserve the name, create the RW layer (with
// the init layer), resolve mount points (binds, --mount, image VOLUMEs,
// copy-up), write hostname/hosts/resolv.conf and persist.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { invalidArgument, notFound } from '../errors/index.js';
import type { RWLayer } from '../layer/index.js';
import { chainId, type Digest, type ImageConfig } from '../oci/index.js';
import { type MountPoint, mountPointFromSpec, parseBind, validateTmpfsDestination } from '../volume/mounts.js';
import { copyUp, type VolumeService } from '../volume/service.js';
import { Container } from './container.js';
import { buildHosts, buildResolvConf, readHostFile, writeNetworkFiles } from './dns.js';
import { initLayerKey, setupInitLayer } from './initlayer.js';
import { entrypointAndArgs, mergeImageConfig } from './merge.js';
import { rfc3339Nano } from './state.js';
import type { ContainerStore } from './store.js';
import { type ContainerConfig, emptyEndpoint, type HostConfig, type NetworkingConfig } from './types.js';
import { parseSecurityOpts, validateConfig, validateHostConfig } from './validate.js';
import { volumesFromMountPoints } from './volumes-from.js';

/** moby 20.10 oci.DefaultSpec().Linux.MaskedPaths / ReadonlyPaths (stored in HostConfig at create). */
export const DEFAULT_MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
];
export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

export interface ResolvedImage {
  /** sha256:… */
  id: string;
  config: ImageConfig;
}

/** What the creator needs from the rest of the daemon (ports, so tests can fake them). */
export interface CreateDeps {
  store: ContainerStore;
  volumes: VolumeService;
  layers: {
    createRWLayer(
      name: string,
      parent: Digest | undefined,
      opts: { initFunc?: (root: string) => Promise<void>; initKey?: string },
    ): Promise<RWLayer>;
    releaseRWLayer(name: string): Promise<unknown>;
  };
  /** Looks an image up by reference or ID; throws not-found ("No such image: x"). */
  resolveImage(ref: string): Promise<ResolvedImage>;
  daemon: {
    defaultShmSize?: number;
    defaultIpcMode?: string;
    defaultCgroupnsMode?: string;
    defaultRuntime?: string;
    logDriver?: string;
    logOpts?: Record<string, string>;
    noNewPrivileges?: boolean;
    dns?: string[];
    dnsSearch?: string[];
    dnsOpts?: string[];
    storageDriver?: string;
  };
  /** Host files (tests point them elsewhere). */
  hostResolvConf?: string;
  hostHosts?: string;
  hostname?: () => string;
  numCpus?: number;
}

export interface CreateRequest {
  name?: string;
  config: ContainerConfig;
  hostConfig?: HostConfig | null;
  networkingConfig?: NetworkingConfig | null;
  platform?: string;
}

export interface CreateResult {
  id: string;
  warnings: string[];
  container: Container;
}

const BRIDGE_NOTE =
  'berth: the bridge network driver is not available yet; the container is attached to network "none" (no network)';

export class ContainerCreator {
  constructor(private readonly d: CreateDeps) {}

  async create(req: CreateRequest): Promise<CreateResult> {
    const d = this.d;
    const config: ContainerConfig = structuredClone(req.config ?? {});
    const hc: HostConfig = structuredClone(req.hostConfig ?? {});
    if (!config.Image) throw invalidArgument('No image specified');
    validateConfig(config);
    const warnings = validateHostConfig(hc, config, { numCpus: d.numCpus ?? os.cpus().length });
    const sec = parseSecurityOpts(hc.SecurityOpt, d.daemon.noNewPrivileges);

    // network mode (only none, host, container:<id>; default/bridge → none with a note)
    const net = hc.NetworkMode ?? '';
    if (net === '' || net === 'default' || net === 'bridge') {
      hc.NetworkMode = 'none';
      warnings.push(BRIDGE_NOTE);
    } else if (net.startsWith('container:')) {
      const other = d.store.get(net.slice('container:'.length));
      hc.NetworkMode = `container:${other.ID}`;
    } else if (net !== 'none' && net !== 'host') {
      throw notFound(`network ${net} not found`);
    }
    for (const mode of [hc.IpcMode, hc.PidMode]) {
      if (mode?.startsWith('container:')) d.store.get(mode.slice('container:'.length));
    }

    const image = await d.resolveImage(config.Image);
    const merged = mergeImageConfig(config, image.config.config);
    const { path: procPath, args } = entrypointAndArgs(merged);
    if ((image.config.os || 'linux') !== 'linux')
      throw invalidArgument(`image operating system "${image.config.os}" cannot be used on this platform`);

    // defaults dockerd fills in (adaptContainerSettings / setHostConfig)
    if (!hc.ShmSize) hc.ShmSize = d.daemon.defaultShmSize || DEFAULT_SHM_SIZE;
    if (!hc.IpcMode) hc.IpcMode = d.daemon.defaultIpcMode || 'private';
    if (!hc.CgroupnsMode) hc.CgroupnsMode = d.daemon.defaultCgroupnsMode || (isCgroupV2() ? 'private' : 'host');
    if (!hc.Runtime) hc.Runtime = d.daemon.defaultRuntime || 'runc';
    if ((hc.Memory ?? 0) > 0 && !hc.MemorySwap) hc.MemorySwap = (hc.Memory ?? 0) * 2;
    if (!hc.LogConfig?.Type)
      hc.LogConfig = {
        Type: d.daemon.logDriver || 'json-file',
        Config: hc.LogConfig?.Config ?? d.daemon.logOpts ?? {},
      };
    if (!hc.Privileged) {
      hc.MaskedPaths ??= [...DEFAULT_MASKED_PATHS];
      hc.ReadonlyPaths ??= [...DEFAULT_READONLY_PATHS];
    }
    for (const t of Object.keys(hc.Tmpfs ?? {})) validateTmpfsDestination(t);

    // ID and name
    const id = randomId(d.store);
    const name = req.name ? d.store.names.reserve(req.name, id) : d.store.names.generate(id);
    const c = new Container(d.store.dir, id, rfc3339Nano());
    c.Name = name;
    c.Path = procPath;
    c.Args = args;
    c.Image = image.id;
    c.Driver = d.daemon.storageDriver || 'overlay2';
    c.NoNewPrivileges = sec.noNewPrivileges;
    c.SeccompProfile = sec.seccompProfile;
    c.AppArmorProfile = sec.appArmorProfile;
    c.HostConfig = hc;
    if (hc.NetworkMode === 'host' && !merged.Hostname) merged.Hostname = (d.hostname ?? os.hostname)();
    if (!merged.Hostname) merged.Hostname = id.slice(0, 12);
    else if (!merged.Domainname && merged.Hostname.includes('.') && hc.NetworkMode !== 'host') {
      const i = merged.Hostname.indexOf('.');
      merged.Domainname = merged.Hostname.slice(i + 1);
      merged.Hostname = merged.Hostname.slice(0, i);
    }
    c.Config = merged;
    const netName = hc.NetworkMode!.startsWith('container:') ? undefined : hc.NetworkMode!;
    if (netName)
      c.NetworkSettings.Networks[netName] = {
        ...emptyEndpoint(),
        ...(req.networkingConfig?.EndpointsConfig?.[netName] ?? {}),
      };

    const cleanups: Array<() => Promise<void> | void> = [() => d.store.names.releaseAll(id)];
    try {
      c.ensureDirs();
      cleanups.push(() => fs.rmSync(c.root, { recursive: true, force: true }));
      const diffIds = image.config.rootfs.diff_ids as Digest[];
      const layer = await d.layers.createRWLayer(id, chainId(diffIds), {
        initFunc: (root) => setupInitLayer(root),
        initKey: initLayerKey(),
      });
      cleanups.push(async () => {
        await d.layers.releaseRWLayer(id);
      });
      await this.setupMountPoints(c, layer, cleanups);
      this.writeNetworkFiles(c);
      // An --rm container's config is not fsynced: if a crash loses it, what is
      // lost is a container that was to be deleted as it stopped (~4 ms here).
      c.toDisk({ sync: !hc.AutoRemove });
      d.store.add(c);
    } catch (e) {
      for (const f of cleanups.reverse()) {
        try {
          await f();
        } catch {
          // best effort
        }
      }
      throw e;
    }
    return { id, warnings, container: c };
  }

  /** Binds, --mount, image VOLUMEs (anonymous volumes), with copy-up of image content into new volumes. */
  private async setupMountPoints(
    c: Container,
    layer: RWLayer,
    cleanups: Array<() => void | Promise<void>>,
  ): Promise<void> {
    const d = this.d;
    const hc = c.HostConfig;
    const mps: Record<string, MountPoint> = {};
    // --volumes-from first (moby registerMountPoints): unknown container → 400; -v/--mount win below
    const from = volumesFromMountPoints(hc.VolumesFrom ?? [], (ref) => d.store.get(ref));
    const dup = (dest: string) => {
      if (mps[dest]) throw invalidArgument(`Duplicate mount point: ${dest}`);
    };
    for (const b of hc.Binds ?? []) {
      const mp = parseBind(b, hc.VolumeDriver ?? '');
      dup(mp.Destination);
      if (mp.Type === 'bind') {
        // -v creates a missing host directory (moby: MkdirAll 0755)
        if (!fs.existsSync(mp.Source)) fs.mkdirSync(mp.Source, { recursive: true, mode: 0o755 });
        mp.Spec = { Type: 'bind', Source: mp.Source, Target: mp.Destination, ...(mp.RW ? {} : { ReadOnly: true }) };
      } else {
        mp.Spec = { Type: 'volume', Source: mp.Name, Target: mp.Destination, ...(mp.RW ? {} : { ReadOnly: true }) };
        if (!mp.Relabel) mp.Relabel = 'z';
      }
      mps[mp.Destination] = mp;
    }
    for (const m of hc.Mounts ?? []) {
      const mp = mountPointFromSpec(m);
      dup(mp.Destination);
      if (mp.Type === 'volume' && mp.Name) mp.Relabel = 'z';
      mps[mp.Destination] = mp;
    }
    for (const [dest, mp] of Object.entries(from)) mps[dest] ??= mp;
    const tmpfs = new Set(Object.keys(hc.Tmpfs ?? {}));
    for (const dest of Object.keys(c.Config.Volumes ?? {})) {
      const clean = path.posix.normalize(dest);
      if (mps[clean] || tmpfs.has(clean)) continue;
      mps[clean] = {
        Source: '',
        Destination: clean,
        RW: true,
        Name: '',
        Driver: 'local',
        Type: 'volume',
        Spec: {},
        SkipMountpointCreation: false,
        CopyData: true,
      };
    }
    let needsCopy: MountPoint[] = [];
    for (const mp of Object.values(mps)) {
      if (mp.Type !== 'volume') continue;
      const existed = !!mp.Name && d.volumes.local.has(mp.Name);
      const vol = d.volumes.create({
        name: mp.Name || undefined,
        driver: mp.Driver || undefined,
        driverOpts: mp.Spec.VolumeOptions?.DriverConfig?.Options,
        labels: mp.Spec.VolumeOptions?.Labels,
      });
      if (!mp.Name) mp.Name = vol.Name;
      mp.Driver = 'local';
      mp.ID = randomBytes(32).toString('hex');
      if (mp.Spec.Type === 'volume') mp.Source = vol.Mountpoint;
      d.volumes.acquire(vol.Name, c.ID);
      cleanups.push(() => {
        d.volumes.release(vol.Name, c.ID);
        if (!existed) d.volumes.remove(vol.Name, { force: true });
      });
      if (mp.CopyData !== false && !(vol.Options && Object.keys(vol.Options).length)) needsCopy.push(mp);
    }
    // Copy-up needs the image's view of the destination. Read from the layer
    // directories when one layer alone holds it (or none does); mount only
    // when layers merge there (a mount plus an unmount that syncs the disk).
    if (needsCopy.length) {
      const merged: MountPoint[] = [];
      for (const mp of needsCopy) {
        const src = await layer.soleSource(mp.Destination);
        if (!src) merged.push(mp);
        else if (src.kind === 'dir') copyUp(src.path, d.volumes.local.dataPath(mp.Name));
      }
      needsCopy = merged;
    }
    if (needsCopy.length) {
      const root = await layer.mount();
      try {
        for (const mp of needsCopy) copyUp(path.join(root, mp.Destination), d.volumes.local.dataPath(mp.Name));
      } finally {
        await layer.unmount();
      }
    }
    c.MountPoints = Object.fromEntries(Object.entries(mps).sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  private writeNetworkFiles(c: Container): void {
    const d = this.d;
    const hc = c.HostConfig;
    if (hc.NetworkMode?.startsWith('container:')) {
      const other = d.store.get(hc.NetworkMode.slice('container:'.length));
      c.HostnamePath = other.HostnamePath;
      c.HostsPath = other.HostsPath;
      c.ResolvConfPath = other.ResolvConfPath;
      return;
    }
    c.setNetworkFilePaths();
    const hostResolv = readHostFile(d.hostResolvConf ?? '/etc/resolv.conf');
    const host = hc.NetworkMode === 'host';
    const dns = {
      dns: hc.Dns?.length ? hc.Dns : d.daemon.dns,
      dnsSearch: hc.DnsSearch?.length ? hc.DnsSearch : d.daemon.dnsSearch,
      dnsOptions: hc.DnsOptions?.length ? hc.DnsOptions : d.daemon.dnsOpts,
    };
    const resolvConf =
      host && !dns.dns?.length && !dns.dnsSearch?.length && !dns.dnsOptions?.length
        ? hostResolv
        : buildResolvConf(hostResolv, dns);
    const hosts = host
      ? readHostFile(d.hostHosts ?? '/etc/hosts') +
        (hc.ExtraHosts ?? []).map((e) => `${e.slice(e.indexOf(':') + 1)}\t${e.slice(0, e.indexOf(':'))}\n`).join('')
      : buildHosts({ extraHosts: hc.ExtraHosts ?? [] });
    writeNetworkFiles(c.root, { hostname: `${c.Config.Hostname}\n`, hosts, resolvConf });
  }
}

function randomId(store: ContainerStore): string {
  for (;;) {
    const id = randomBytes(32).toString('hex');
    // moby's stringid never returns an all-numeric short ID
    if (/^\d+$/.test(id.slice(0, 12))) continue;
    if (!store.has(id)) return id;
  }
}

export function isCgroupV2(): boolean {
  try {
    return fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
  } catch {
    return false;
  }
}
