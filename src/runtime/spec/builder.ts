// The OCI runtime spec (config.json) for a container, built as dockerd 20.10's
// createSpec does (daemon/oci_linux.go over oci.DefaultSpec()).
// Intended differences from dockerd, each documented:
//   - cgroupsPath: `/berth/<id>` (cgroupfs) or `system.slice:berth:<id>`
//     (systemd), so berth's cgroups never collide with a dockerd's `/docker/<id>`;
//   - no prestart hook (dockerd's libnetwork-setkey): berth has no libnetwork;
//   - `--network host`: no network namespace entry (runc then stays in the
//     caller's, i.e. berthd's, namespace) where dockerd joins a bind of the
//     host namespace at `<exec-root>/netns/default`;
//   - apparmorProfile is never set (berth does not load AppArmor profiles).
import fs from 'node:fs';
import path from 'node:path';
import type { Container } from '../../container/container.js';
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from '../../container/create.js';
import { processEnv } from '../../container/merge.js';
import { ALL_CAPS, normalizeCaps } from '../../container/validate.js';
import { invalidArgument } from '../../errors/index.js';
import { devMajor, devMinor } from '../../fsutil/index.js';
import { convertTmpfsOptions } from '../../volume/mounts.js';
import { DEFAULT_SECCOMP_PROFILE_PATH, loadSeccompProfile, parseSeccompProfile, resolveSeccomp } from './seccomp.js';
import type { Device, DeviceCgroup, Mount, Namespace, Resources, Rlimit, Spec } from './types.js';
import { getAdditionalGroups, getExecUser } from './user.js';

export const OCI_VERSION = '1.0.2-dev';
export const DEFAULT_PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const IN_CONTAINER_INIT_PATH = '/sbin/docker-init';
export const CGROUP_SCOPE_PREFIX = 'berth';
export const CGROUPFS_PARENT = '/berth';

/** oci/caps/defaults.go */
export const DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export function defaultMounts(): Mount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777'] },
  ];
}

/** oci/defaults.go device cgroup rules. */
export function defaultDeviceRules(): DeviceCgroup[] {
  const c = (major: number, minor: number): DeviceCgroup => ({ allow: true, type: 'c', major, minor, access: 'rwm' });
  return [
    { allow: false, access: 'rwm' },
    c(1, 5),
    c(1, 3),
    c(1, 9),
    c(1, 8),
    c(5, 0),
    c(5, 1),
    { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' },
  ];
}

/** moby caps.TweakCapabilities. */
export function tweakCapabilities(
  adds: string[] | null | undefined,
  drops: string[] | null | undefined,
  privileged: boolean,
): string[] {
  if (privileged) return [...ALL_CAPS];
  if (!adds?.length && !drops?.length) return [...DEFAULT_CAPS];
  const drop = normalizeCaps(drops);
  const add = normalizeCaps(adds);
  if (add.includes('ALL')) return ALL_CAPS.filter((c) => !drop.includes(c));
  if (drop.includes('ALL')) return add;
  return [...DEFAULT_CAPS.filter((c) => !drop.includes(c)), ...add];
}

export interface SpecDaemonConfig {
  cgroupParent?: string;
  /** native.cgroupdriver from exec-opts. */
  cgroupDriver?: 'cgroupfs' | 'systemd';
  defaultUlimits?: Record<string, { name: string; soft: number; hard: number }>;
  /** daemon.json seccomp-profile: a file path, "unconfined", or "" for Docker's default. */
  seccompProfile?: string;
  init?: boolean;
  initPath?: string;
}

export interface SpecInput {
  container: Container;
  /** The mounted RW layer (rootfs). */
  rootfs: string;
  daemon?: SpecDaemonConfig;
  /** Sources of volume mount points by destination (volume data paths). */
  volumePaths?: Record<string, string>;
  /** PID of another container for container:<id> modes. */
  pidOf?: (id: string) => number;
  /** Test hooks. */
  sysctlExists?: (name: string) => boolean;
  arch?: string;
  kernel?: [number, number];
}

export interface BuildResult {
  spec: Spec;
  warnings: string[];
}

const depth = (p: string) => path.posix.normalize(p).split('/').length;

interface UserMount {
  source: string;
  destination: string;
  writable: boolean;
  propagation: string;
  nonRecursive?: boolean;
  tmpfsData?: string;
}

/** Tmpfs option merge (moby pkg/mount MergeTmpfsOptions): later options win per flag/key. */
export function mergeTmpfsOptions(options: string[]): string[] {
  const FLAG_GROUP: Record<string, string> = {};
  const groups: Array<[string, string[]]> = [
    ['rdonly', ['ro', 'rw']],
    ['nosuid', ['suid', 'nosuid']],
    ['nodev', ['dev', 'nodev']],
    ['noexec', ['exec', 'noexec']],
    ['sync', ['sync', 'async']],
    ['dirsync', ['dirsync']],
    ['remount', ['remount']],
    ['mand', ['mand', 'nomand']],
    ['noatime', ['atime', 'noatime']],
    ['nodiratime', ['diratime', 'nodiratime']],
    ['bind', ['bind']],
    ['rbind', ['rbind']],
    ['unbindable', ['unbindable']],
    ['runbindable', ['runbindable']],
    ['private', ['private']],
    ['rprivate', ['rprivate']],
    ['shared', ['shared']],
    ['rshared', ['rshared']],
    ['slave', ['slave']],
    ['rslave', ['rslave']],
    ['relatime', ['relatime', 'norelatime']],
    ['strictatime', ['strictatime', 'nostrictatime']],
  ];
  for (const [g, names] of groups) for (const n of names) FLAG_GROUP[n] = g;
  const VALID_DATA = new Set(['size', 'mode', 'uid', 'gid', 'nr_inodes', 'nr_blocks', 'mpol']);
  const seenFlags = new Set<string>();
  const seenData = new Set<string>();
  const out: string[] = [];
  for (let i = options.length - 1; i >= 0; i--) {
    const o = options[i]!;
    if (o === 'defaults') continue;
    const g = FLAG_GROUP[o];
    if (g) {
      if (!seenFlags.has(g)) {
        seenFlags.add(g);
        out.unshift(o);
      }
      continue;
    }
    const eq = o.indexOf('=');
    const k = eq < 0 ? o : o.slice(0, eq);
    if (eq < 0 || !VALID_DATA.has(k)) throw invalidArgument(`Invalid tmpfs option ["${o.split('=').join('" "')}"]`);
    if (!seenData.has(k)) {
      seenData.add(k);
      out.unshift(o);
    }
  }
  return out;
}

/** oci.DevicesFromPath: a device node, or every device under a directory. */
export function devicesFromPath(
  hostPath: string,
  containerPath: string,
  perms: string,
): { devs: Device[]; rules: DeviceCgroup[] } {
  const resolved = (() => {
    try {
      return fs.realpathSync(hostPath);
    } catch {
      return hostPath;
    }
  })();
  let st: fs.Stats;
  try {
    st = fs.statSync(resolved);
  } catch (e) {
    throw invalidArgument(
      `error gathering device information while adding custom device "${hostPath}": ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`,
    );
  }
  const one = (p: string, s: fs.Stats, cp: string) => {
    const type = s.isCharacterDevice() ? 'c' : s.isBlockDevice() ? 'b' : undefined;
    if (!type) return undefined;
    const dev: Device = {
      path: cp,
      type,
      major: devMajor(s.rdev),
      minor: devMinor(s.rdev),
      fileMode: s.mode & 0o777,
      uid: s.uid,
      gid: s.gid,
    };
    const rule: DeviceCgroup = { allow: true, type, major: dev.major, minor: dev.minor, access: perms };
    void p;
    return { dev, rule };
  };
  const first = one(resolved, st, containerPath);
  if (first) return { devs: [first.dev], rules: [first.rule] };
  if (st.isDirectory()) {
    const devs: Device[] = [];
    const rules: DeviceCgroup[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir)) {
        const p = path.join(dir, e);
        let s: fs.Stats;
        try {
          s = fs.statSync(p);
        } catch {
          continue;
        }
        if (s.isDirectory()) walk(p);
        else {
          const r = one(p, s, path.join(containerPath, path.relative(resolved, p)));
          if (r) {
            devs.push(r.dev);
            rules.push(r.rule);
          }
        }
      }
    };
    walk(resolved);
    return { devs, rules };
  }
  throw invalidArgument(
    `error gathering device information while adding custom device "${hostPath}": not a device node`,
  );
}

/** All host devices for --privileged (runc devices.HostDevices: /dev minus pts, shm, fd, mqueue, console). */
export function hostDevices(): Device[] {
  const out: Device[] = [];
  const skip = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (!skip.has(e.name)) walk(p);
        continue;
      }
      if (p === '/dev/console') continue;
      if (!e.isCharacterDevice() && !e.isBlockDevice()) continue;
      let s: fs.Stats;
      try {
        s = fs.lstatSync(p);
      } catch {
        continue;
      }
      out.push({
        path: p,
        type: s.isCharacterDevice() ? 'c' : 'b',
        major: devMajor(s.rdev),
        minor: devMinor(s.rdev),
        fileMode: s.mode & 0o777,
        uid: s.uid,
        gid: s.gid,
      });
    }
  };
  walk('/dev');
  return out;
}

const PROPAGATION = new Set(['shared', 'rshared', 'slave', 'rslave', 'private', 'rprivate']);

/** Builds config.json for a container. */
export function buildSpec(input: SpecInput): BuildResult {
  const c = input.container;
  const hc = c.HostConfig;
  const d = input.daemon ?? {};
  const warnings: string[] = [];
  const sysctlExists =
    input.sysctlExists ?? ((n: string) => fs.existsSync(path.join('/proc/sys', n.replace(/\./g, '/'))));
  const net = hc.NetworkMode ?? 'none';
  const pidMode = hc.PidMode ?? '';
  const ipcMode = hc.IpcMode ?? 'private';

  // --- process (WithCommonOptions, WithUser, WithRlimits, WithCapabilities)
  let args = [c.Path, ...c.Args];
  const mounts = defaultMounts();
  const privatePid = pidMode === '' || pidMode === 'private';
  const wantInit = hc.Init ?? d.init ?? false;
  if (privatePid && wantInit) {
    args = [IN_CONTAINER_INIT_PATH, '--', ...args];
    mounts.push({
      destination: IN_CONTAINER_INIT_PATH,
      type: 'bind',
      source: initBinary(d.initPath),
      options: ['bind', 'ro'],
    });
  }
  const exec = getExecUser(input.rootfs, c.Config.User ?? '');
  const additionalGids = [exec.gid, ...exec.sgids];
  if (hc.GroupAdd?.length) additionalGids.push(...getAdditionalGroups(input.rootfs, hc.GroupAdd));
  const caps = tweakCapabilities(hc.CapAdd, hc.CapDrop, !!hc.Privileged);
  const rlimits: Rlimit[] = [];
  const seen = new Set<string>();
  for (const u of hc.Ulimits ?? []) {
    seen.add(u.Name);
    rlimits.push({ type: `RLIMIT_${u.Name.toUpperCase()}`, hard: u.Hard, soft: u.Soft });
  }
  for (const [name, u] of Object.entries(d.defaultUlimits ?? {})) {
    if (!seen.has(name)) rlimits.push({ type: `RLIMIT_${name.toUpperCase()}`, hard: u.hard, soft: u.soft });
  }
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      ...(c.Config.Tty ? { terminal: true } : {}),
      user: { uid: exec.uid, gid: exec.gid, additionalGids },
      args,
      env: processEnv(c.Config, DEFAULT_PATH_ENV),
      cwd: c.Config.WorkingDir || '/',
      capabilities: exec.uid === 0 ? { bounding: caps, effective: caps, permitted: caps } : { bounding: caps },
      ...(rlimits.length ? { rlimits } : {}),
      ...(c.NoNewPrivileges ? { noNewPrivileges: true } : {}),
      oomScoreAdj: hc.OomScoreAdj ?? 0,
    },
    root: { path: input.rootfs, ...(hc.ReadonlyRootfs ? { readonly: true } : {}) },
    hostname: c.Config.Hostname ?? '',
    mounts: [],
    linux: { namespaces: [] },
  };

  // --- sysctls (private network namespace defaults, then the user's)
  const sysctl: Record<string, string> = {};
  if (net !== 'host' && !net.startsWith('container:')) {
    if (sysctlExists('net.ipv4.ping_group_range')) sysctl['net.ipv4.ping_group_range'] = '0 2147483647';
    if (sysctlExists('net.ipv4.ip_unprivileged_port_start')) sysctl['net.ipv4.ip_unprivileged_port_start'] = '0';
  }
  for (const [k, v] of Object.entries(hc.Sysctls ?? {})) sysctl[k] = v;

  // --- cgroups path (berth naming, see header)
  const parent = hc.CgroupParent || d.cgroupParent;
  const cgroupsPath =
    d.cgroupDriver === 'systemd'
      ? `${parent || 'system.slice'}:${CGROUP_SCOPE_PREFIX}:${c.ID}`
      : path.posix.join(parent || CGROUPFS_PARENT, c.ID);

  // --- resources and devices
  let deviceRules = defaultDeviceRules();
  const devices: Device[] = [];
  if (hc.Privileged) {
    devices.push(...hostDevices());
    for (const m of hc.Devices ?? []) {
      if (m.PathOnHost === m.PathInContainer) continue;
      devices.push(...devicesFromPath(m.PathOnHost, m.PathInContainer, 'rwm').devs);
    }
    deviceRules = [{ allow: true, access: 'rwm' }];
  } else {
    for (const m of hc.Devices ?? []) {
      const r = devicesFromPath(m.PathOnHost, m.PathInContainer || m.PathOnHost, m.CgroupPermissions || 'rwm');
      devices.push(...r.devs);
      deviceRules.push(...r.rules);
    }
    for (const rule of hc.DeviceCgroupRules ?? []) {
      const mm = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/.exec(rule);
      if (!mm) throw invalidArgument(`invalid device cgroup rule format: '${rule}'`);
      deviceRules.push({
        allow: true,
        type: mm[1]!,
        major: mm[2] === '*' ? -1 : Number(mm[2]),
        minor: mm[3] === '*' ? -1 : Number(mm[3]),
        access: mm[4]!,
      });
    }
  }
  const resources: Resources = { devices: deviceRules };
  const mem: NonNullable<Resources['memory']> = {};
  if ((hc.Memory ?? 0) > 0) mem.limit = hc.Memory!;
  if ((hc.MemoryReservation ?? 0) > 0) mem.reservation = hc.MemoryReservation!;
  if ((hc.MemorySwap ?? 0) > 0 || (hc.MemorySwap ?? 0) === -1) {
    if ((hc.MemorySwap ?? 0) > 0) mem.swap = hc.MemorySwap!;
  }
  if (hc.KernelMemory) mem.kernel = hc.KernelMemory;
  if (hc.KernelMemoryTCP) mem.kernelTCP = hc.KernelMemoryTCP;
  if (hc.MemorySwappiness !== undefined && hc.MemorySwappiness !== null && hc.MemorySwappiness >= 0)
    mem.swappiness = hc.MemorySwappiness;
  mem.disableOOMKiller = !!hc.OomKillDisable;
  resources.memory = mem;
  const shares = hc.CpuShares ?? 0;
  if (shares < 0) throw invalidArgument('shares: invalid argument');
  const cpu: NonNullable<Resources['cpu']> = { shares };
  if ((hc.NanoCpus ?? 0) > 0) {
    cpu.quota = Math.floor(((hc.NanoCpus ?? 0) * 100_000) / 1e9);
    cpu.period = 100_000;
  }
  if (hc.CpuPeriod) cpu.period = hc.CpuPeriod;
  if (hc.CpuQuota) cpu.quota = hc.CpuQuota;
  if (hc.CpuRealtimeRuntime) cpu.realtimeRuntime = hc.CpuRealtimeRuntime;
  if (hc.CpuRealtimePeriod) cpu.realtimePeriod = hc.CpuRealtimePeriod;
  if (hc.CpusetCpus) cpu.cpus = hc.CpusetCpus;
  if (hc.CpusetMems) cpu.mems = hc.CpusetMems;
  resources.cpu = cpu;
  if (hc.PidsLimit !== undefined && hc.PidsLimit !== null)
    resources.pids = { limit: hc.PidsLimit > 0 ? hc.PidsLimit : -1 };
  resources.blockIO = { weight: hc.BlkioWeight ?? 0 };

  // --- namespaces (WithNamespaces)
  const ns: Namespace[] = [{ type: 'mount' }];
  const pidOf = (id: string) => {
    const p = input.pidOf?.(id);
    if (!p) throw invalidArgument(`cannot join namespace of container ${id}: it is not running`);
    return p;
  };
  if (!c.Config.NetworkDisabled) {
    if (net.startsWith('container:')) ns.push({ type: 'network', path: `/proc/${pidOf(net.slice(10))}/ns/net` });
    else if (net !== 'host') ns.push({ type: 'network' });
  }
  if (hc.UTSMode !== 'host') ns.push({ type: 'uts' });
  if (pidMode.startsWith('container:')) ns.push({ type: 'pid', path: `/proc/${pidOf(pidMode.slice(10))}/ns/pid` });
  else if (pidMode !== 'host') ns.push({ type: 'pid' });
  if (ipcMode.startsWith('container:')) ns.push({ type: 'ipc', path: `/proc/${pidOf(ipcMode.slice(10))}/ns/ipc` });
  else if (ipcMode !== 'host') ns.push({ type: 'ipc' });
  if (hc.CgroupnsMode === 'private') ns.push({ type: 'cgroup' });
  if (hc.UTSMode === 'host') delete spec.hostname;

  // --- mounts (WithMounts)
  const user: UserMount[] = [];
  const tmpfsDests = new Set(Object.keys(hc.Tmpfs ?? {}));
  for (const mp of Object.values(c.MountPoints)) tmpfsDests.add(mp.Type === 'tmpfs' ? mp.Destination : '');
  const volMounts: UserMount[] = [];
  for (const mp of Object.values(c.MountPoints).sort((a, b) => (a.Destination < b.Destination ? -1 : 1))) {
    if (mp.Type === 'tmpfs' || tmpfsDests.has(mp.Destination)) continue;
    const source = mp.Type === 'volume' ? (input.volumePaths?.[mp.Destination] ?? mp.Source) : mp.Source;
    if (!source) throw invalidArgument(`no source for mount point ${mp.Destination}`);
    volMounts.push({
      source,
      destination: mp.Destination,
      writable: mp.RW,
      propagation: mp.Propagation ?? '',
      nonRecursive: !!mp.Spec.BindOptions?.NonRecursive,
    });
  }
  user.push(...sortByDepth(volMounts));
  const netFile = (p: string, dest: string) => {
    if (!p || !fs.existsSync(p)) return;
    const mp = c.MountPoints[dest];
    user.push({ source: p, destination: dest, writable: mp ? mp.RW : !hc.ReadonlyRootfs, propagation: 'rprivate' });
  };
  if (!c.MountPoints['/etc/resolv.conf']) netFile(c.ResolvConfPath, '/etc/resolv.conf');
  if (!c.MountPoints['/etc/hostname']) netFile(c.HostnamePath, '/etc/hostname');
  if (!c.MountPoints['/etc/hosts']) netFile(c.HostsPath, '/etc/hosts');
  if (ipcMode === 'host')
    user.push({ source: '/dev/shm', destination: '/dev/shm', writable: true, propagation: 'rprivate' });
  else if (ipcMode.startsWith('container:'))
    user.push({
      source: `/proc/${pidOf(ipcMode.slice(10))}/root/dev/shm`,
      destination: '/dev/shm',
      writable: true,
      propagation: 'rprivate',
    });
  for (const [dest, data] of Object.entries(hc.Tmpfs ?? {}))
    user.push({ source: 'tmpfs', destination: dest, writable: true, propagation: '', tmpfsData: data });
  for (const mp of Object.values(c.MountPoints).sort((a, b) => (a.Destination < b.Destination ? -1 : 1))) {
    if (mp.Type !== 'tmpfs') continue;
    user.push({
      source: 'tmpfs',
      destination: mp.Destination,
      writable: mp.RW,
      propagation: '',
      tmpfsData: convertTmpfsOptions(mp.Spec.TmpfsOptions, !!mp.Spec.ReadOnly),
    });
  }
  const sortedUser = sortByDepth(user);
  const userDests = new Set(sortedUser.map((m) => m.destination));
  const mountDev = userDests.has('/dev');
  const out: Mount[] = [];
  for (const m of mounts) {
    if (userDests.has(m.destination)) continue;
    if (mountDev && m.destination.startsWith('/dev/')) continue;
    if (m.destination === '/dev/shm') {
      if (ipcMode === 'none') continue;
      m.options = [...(m.options ?? []), `size=${hc.ShmSize ?? 64 * 1024 * 1024}`];
    }
    out.push(m);
  }
  let rootfsPropagation: string | undefined;
  for (const m of sortedUser) {
    if (m.source === 'tmpfs' && m.tmpfsData !== undefined) {
      const opts = ['noexec', 'nosuid', 'nodev', 'rprivate', ...(m.tmpfsData ? m.tmpfsData.split(',') : [])];
      out.push({ destination: m.destination, type: 'tmpfs', source: 'tmpfs', options: mergeTmpfsOptions(opts) });
      continue;
    }
    const opts = [m.nonRecursive ? 'bind' : 'rbind'];
    if (!m.writable) opts.push('ro');
    if (m.propagation && PROPAGATION.has(m.propagation)) {
      opts.push(m.propagation);
      if (m.propagation === 'shared' || m.propagation === 'rshared') rootfsPropagation = 'rshared';
      else if ((m.propagation === 'slave' || m.propagation === 'rslave') && rootfsPropagation !== 'rshared')
        rootfsPropagation = 'rslave';
    }
    out.push({ destination: m.destination, type: 'bind', source: m.source, options: opts });
  }
  if (hc.ReadonlyRootfs) {
    for (const m of out) {
      if (['/proc', '/dev/pts', '/dev/shm', '/dev/mqueue', '/dev'].includes(m.destination)) continue;
      if (!userDests.has(m.destination) && !m.options?.includes('ro')) m.options = [...(m.options ?? []), 'ro'];
    }
  }
  let masked: string[] | undefined = hc.MaskedPaths ?? DEFAULT_MASKED_PATHS;
  let readonly: string[] | undefined = hc.ReadonlyPaths ?? DEFAULT_READONLY_PATHS;
  if (hc.Privileged) {
    for (const m of out) {
      if (m.destination === '/sys' || m.type === 'cgroup') m.options = m.options?.filter((o) => o !== 'ro');
    }
    masked = undefined;
    readonly = undefined;
  }
  spec.mounts = out;

  // --- seccomp (WithSeccomp)
  const seccomp = seccompFor(c, d, caps, input);

  spec.linux = {
    ...(Object.keys(sysctl).length ? { sysctl: sortKeys(sysctl) } : {}),
    resources,
    cgroupsPath,
    namespaces: ns,
    ...(devices.length ? { devices } : {}),
    ...(seccomp ? { seccomp } : {}),
    ...(rootfsPropagation ? { rootfsPropagation } : {}),
    ...(masked?.length ? { maskedPaths: masked } : {}),
    ...(readonly?.length ? { readonlyPaths: readonly } : {}),
  };
  return { spec, warnings };
}

function seccompFor(c: Container, d: SpecDaemonConfig, caps: string[], input: SpecInput) {
  if (c.HostConfig.Privileged) return undefined;
  const p = c.SeccompProfile;
  if (p === 'unconfined') return undefined;
  const opts = { bounding: caps, arch: input.arch, kernel: input.kernel };
  if (p && p !== 'builtin') return resolveSeccomp(parseSeccompProfile(p), opts);
  if (d.seccompProfile === 'unconfined') return undefined;
  const file = d.seccompProfile && d.seccompProfile !== 'builtin' ? d.seccompProfile : DEFAULT_SECCOMP_PROFILE_PATH;
  return resolveSeccomp(loadSeccompProfile(file), opts);
}

function sortByDepth<T extends { destination: string }>(ms: T[]): T[] {
  return ms
    .map((m, i) => [m, i] as const)
    .sort(([a, i], [b, j]) => depth(a.destination) - depth(b.destination) || i - j)
    .map(([m]) => m);
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** docker-init: daemon init-path, else docker-init / tini-static / tini on PATH. */
export function initBinary(initPath?: string): string {
  if (initPath) return initPath;
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    for (const name of ['docker-init', 'tini-static', 'tini']) {
      const p = path.join(dir, name);
      if (fs.existsSync(p)) return p;
    }
  }
  throw invalidArgument('exec: "docker-init": executable file not found in $PATH');
}

/**
 * Mounts every volume mount point of `c` through the volume service (taking the
 * container's reference; option volumes such as tmpfs/bind get mounted now) and
 * returns their data paths by destination, for buildSpec's `volumePaths`.
 * Call `unmountVolumes` when the container stops.
 */
export function mountVolumes(
  c: Container,
  volumes: { mount(name: string, containerId: string): string },
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const mp of Object.values(c.MountPoints)) {
    if (mp.Type === 'volume' && mp.Name) out[mp.Destination] = volumes.mount(mp.Name, c.ID);
  }
  return out;
}

export function unmountVolumes(c: Container, volumes: { unmount(name: string, containerId: string): void }): void {
  for (const mp of Object.values(c.MountPoints)) if (mp.Type === 'volume' && mp.Name) volumes.unmount(mp.Name, c.ID);
}

/** Writes `<execRoot>/containers/<id>/config.json` (the runc bundle); returns the bundle dir. */
export function writeBundle(execRoot: string, id: string, spec: Spec): string {
  const dir = path.join(execRoot, 'containers', id);
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  // written in place: only the runtime reads it, after this returns, and every
  // start writes it anew
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec), { mode: 0o644 });
  return dir;
}
