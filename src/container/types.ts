// Wire shapes of a container as moby 20.10 persists it: config.v2.json
// (container.Container) and hostconfig.json (api/types/container.HostConfig),
// and the Engine API's create request. Key order follows Go's struct order so
// that files written by berth read like dockerd's.
import type { ApiMount, MountPoint } from '../volume/mounts.js';

export type { ApiMount, MountPoint };

/** api/types/container.Config (the create request's body root): the same struct as an image's config. */
import type { ContainerConfig } from '../oci/index.js';

export type { ContainerConfig };

export interface RestartPolicy {
  Name: '' | 'no' | 'always' | 'unless-stopped' | 'on-failure' | string;
  MaximumRetryCount: number;
}

export interface Ulimit {
  Name: string;
  Soft: number;
  Hard: number;
}

export interface DeviceMapping {
  PathOnHost: string;
  PathInContainer: string;
  CgroupPermissions: string;
}

export interface WeightDevice {
  Path: string;
  Weight: number;
}
export interface ThrottleDevice {
  Path: string;
  Rate: number;
}

/** api/types/container.HostConfig. */
export interface HostConfig {
  Binds?: string[] | null;
  ContainerIDFile?: string;
  LogConfig?: { Type: string; Config: Record<string, string> | null };
  NetworkMode?: string;
  PortBindings?: Record<string, Array<{ HostIp: string; HostPort: string }> | null> | null;
  RestartPolicy?: RestartPolicy;
  AutoRemove?: boolean;
  VolumeDriver?: string;
  VolumesFrom?: string[] | null;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  CgroupnsMode?: string;
  Dns?: string[] | null;
  DnsOptions?: string[] | null;
  DnsSearch?: string[] | null;
  ExtraHosts?: string[] | null;
  GroupAdd?: string[] | null;
  IpcMode?: string;
  Cgroup?: string;
  Links?: string[] | null;
  OomScoreAdj?: number;
  PidMode?: string;
  Privileged?: boolean;
  PublishAllPorts?: boolean;
  ReadonlyRootfs?: boolean;
  SecurityOpt?: string[] | null;
  StorageOpt?: Record<string, string> | null;
  Tmpfs?: Record<string, string> | null;
  UTSMode?: string;
  UsernsMode?: string;
  ShmSize?: number;
  Sysctls?: Record<string, string> | null;
  Runtime?: string;
  ConsoleSize?: [number, number];
  Isolation?: string;
  // Resources
  CpuShares?: number;
  Memory?: number;
  NanoCpus?: number;
  CgroupParent?: string;
  BlkioWeight?: number;
  BlkioWeightDevice?: WeightDevice[] | null;
  BlkioDeviceReadBps?: ThrottleDevice[] | null;
  BlkioDeviceWriteBps?: ThrottleDevice[] | null;
  BlkioDeviceReadIOps?: ThrottleDevice[] | null;
  BlkioDeviceWriteIOps?: ThrottleDevice[] | null;
  CpuPeriod?: number;
  CpuQuota?: number;
  CpuRealtimePeriod?: number;
  CpuRealtimeRuntime?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  Devices?: DeviceMapping[] | null;
  DeviceCgroupRules?: string[] | null;
  DeviceRequests?: unknown[] | null;
  KernelMemory?: number;
  KernelMemoryTCP?: number;
  MemoryReservation?: number;
  MemorySwap?: number;
  MemorySwappiness?: number | null;
  OomKillDisable?: boolean | null;
  PidsLimit?: number | null;
  Ulimits?: Ulimit[] | null;
  CpuCount?: number;
  CpuPercent?: number;
  IOMaximumIOps?: number;
  IOMaximumBandwidth?: number;
  Mounts?: ApiMount[] | null;
  MaskedPaths?: string[] | null;
  ReadonlyPaths?: string[] | null;
  Init?: boolean | null;
}

export interface EndpointSettings {
  IPAMConfig: unknown | null;
  Links: string[] | null;
  Aliases: string[] | null;
  NetworkID: string;
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  MacAddress: string;
  DriverOpts: Record<string, string> | null;
  IPAMOperational: boolean;
}

export interface NetworkingConfig {
  EndpointsConfig?: Record<string, Partial<EndpointSettings>> | null;
}

export interface NetworkSettings {
  Bridge: string;
  SandboxID: string;
  HairpinMode: boolean;
  LinkLocalIPv6Address: string;
  LinkLocalIPv6PrefixLen: number;
  Networks: Record<string, EndpointSettings>;
  Service: unknown | null;
  Ports: Record<string, unknown> | null;
  SandboxKey: string;
  SecondaryIPAddresses: unknown[] | null;
  SecondaryIPv6Addresses: unknown[] | null;
  IsAnonymousEndpoint: boolean;
  HasSwarmEndpoint: boolean;
}

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy' | 'none';

export interface HealthcheckResult {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

export interface Health {
  Status: HealthStatus;
  FailingStreak: number;
  Log: HealthcheckResult[] | null;
}

export interface State {
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  RemovalInProgress: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  Health: Health | null;
}

/** The on-disk config.v2.json document. */
export interface ContainerJSON {
  StreamConfig: Record<string, never>;
  State: State;
  ID: string;
  Created: string;
  Managed: boolean;
  Path: string;
  Args: string[];
  Config: ContainerConfig;
  Image: string;
  NetworkSettings: NetworkSettings;
  LogPath: string;
  Name: string;
  Driver: string;
  OS: string;
  MountLabel: string;
  ProcessLabel: string;
  RestartCount: number;
  HasBeenStartedBefore: boolean;
  HasBeenManuallyStopped: boolean;
  MountPoints: Record<string, MountPoint>;
  SecretReferences: unknown[] | null;
  ConfigReferences: unknown[] | null;
  AppArmorProfile: string;
  HostnamePath: string;
  HostsPath: string;
  ShmPath: string;
  ResolvConfPath: string;
  SeccompProfile: string;
  NoNewPrivileges: boolean;
  LocalLogCacheMeta: { HaveNotifyEnabled: boolean };
}

export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function emptyEndpoint(): EndpointSettings {
  return {
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    NetworkID: '',
    EndpointID: '',
    Gateway: '',
    IPAddress: '',
    IPPrefixLen: 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    MacAddress: '',
    DriverOpts: null,
    IPAMOperational: false,
  };
}

export function emptyNetworkSettings(): NetworkSettings {
  return {
    Bridge: '',
    SandboxID: '',
    HairpinMode: false,
    LinkLocalIPv6Address: '',
    LinkLocalIPv6PrefixLen: 0,
    Networks: {},
    Service: null,
    Ports: null,
    SandboxKey: '',
    SecondaryIPAddresses: null,
    SecondaryIPv6Addresses: null,
    IsAnonymousEndpoint: false,
    HasSwarmEndpoint: false,
  };
}

export function initialState(): State {
  return {
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    RemovalInProgress: false,
    Dead: false,
    Pid: 0,
    ExitCode: 0,
    Error: '',
    StartedAt: ZERO_TIME,
    FinishedAt: ZERO_TIME,
    Health: null,
  };
}

const omit = (v: unknown) =>
  v === undefined ||
  v === '' ||
  v === false ||
  v === 0 ||
  v === null ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);

/** Config with Go's key order and omitempty rules (container.Config JSON tags). */
export function canonicalConfig(c: ContainerConfig): ContainerConfig {
  const o: Record<string, unknown> = {
    Hostname: c.Hostname ?? '',
    Domainname: c.Domainname ?? '',
    User: c.User ?? '',
    AttachStdin: !!c.AttachStdin,
    AttachStdout: !!c.AttachStdout,
    AttachStderr: !!c.AttachStderr,
  };
  if (!omit(c.ExposedPorts)) o.ExposedPorts = c.ExposedPorts;
  o.Tty = !!c.Tty;
  o.OpenStdin = !!c.OpenStdin;
  o.StdinOnce = !!c.StdinOnce;
  o.Env = c.Env ?? null;
  o.Cmd = c.Cmd ?? null;
  if (c.Healthcheck) o.Healthcheck = c.Healthcheck;
  if (c.ArgsEscaped) o.ArgsEscaped = true;
  o.Image = c.Image ?? '';
  o.Volumes = c.Volumes ?? null;
  o.WorkingDir = c.WorkingDir ?? '';
  o.Entrypoint = c.Entrypoint ?? null;
  if (c.NetworkDisabled) o.NetworkDisabled = true;
  if (c.MacAddress) o.MacAddress = c.MacAddress;
  o.OnBuild = c.OnBuild ?? null;
  o.Labels = c.Labels ?? null;
  if (c.StopSignal) o.StopSignal = c.StopSignal;
  if (c.StopTimeout !== undefined && c.StopTimeout !== null) o.StopTimeout = c.StopTimeout;
  if (!omit(c.Shell)) o.Shell = c.Shell;
  return o as ContainerConfig;
}

const HOST_KEYS: Array<[keyof HostConfig, unknown, boolean?]> = [
  ['Binds', null],
  ['ContainerIDFile', ''],
  ['LogConfig', { Type: '', Config: null }],
  ['NetworkMode', ''],
  ['PortBindings', null],
  ['RestartPolicy', { Name: '', MaximumRetryCount: 0 }],
  ['AutoRemove', false],
  ['VolumeDriver', ''],
  ['VolumesFrom', null],
  ['CapAdd', null],
  ['CapDrop', null],
  ['CgroupnsMode', ''],
  ['Dns', null],
  ['DnsOptions', null],
  ['DnsSearch', null],
  ['ExtraHosts', null],
  ['GroupAdd', null],
  ['IpcMode', ''],
  ['Cgroup', ''],
  ['Links', null],
  ['OomScoreAdj', 0],
  ['PidMode', ''],
  ['Privileged', false],
  ['PublishAllPorts', false],
  ['ReadonlyRootfs', false],
  ['SecurityOpt', null],
  ['StorageOpt', null, true],
  ['Tmpfs', null, true],
  ['UTSMode', ''],
  ['UsernsMode', ''],
  ['ShmSize', 0],
  ['Sysctls', null, true],
  ['Runtime', '', true],
  ['ConsoleSize', [0, 0]],
  ['Isolation', ''],
  ['CpuShares', 0],
  ['Memory', 0],
  ['NanoCpus', 0],
  ['CgroupParent', ''],
  ['BlkioWeight', 0],
  ['BlkioWeightDevice', null],
  ['BlkioDeviceReadBps', null],
  ['BlkioDeviceWriteBps', null],
  ['BlkioDeviceReadIOps', null],
  ['BlkioDeviceWriteIOps', null],
  ['CpuPeriod', 0],
  ['CpuQuota', 0],
  ['CpuRealtimePeriod', 0],
  ['CpuRealtimeRuntime', 0],
  ['CpusetCpus', ''],
  ['CpusetMems', ''],
  ['Devices', null],
  ['DeviceCgroupRules', null],
  ['DeviceRequests', null],
  ['KernelMemory', 0],
  ['KernelMemoryTCP', 0],
  ['MemoryReservation', 0],
  ['MemorySwap', 0],
  ['MemorySwappiness', null],
  ['OomKillDisable', false],
  ['PidsLimit', null],
  ['Ulimits', null],
  ['CpuCount', 0],
  ['CpuPercent', 0],
  ['IOMaximumIOps', 0],
  ['IOMaximumBandwidth', 0],
  ['Mounts', null, true],
  ['MaskedPaths', null],
  ['ReadonlyPaths', null],
  ['Init', null, true],
];

/** HostConfig with Go's key order, zero values and omitempty rules (as hostconfig.json). */
export function canonicalHostConfig(h: HostConfig): HostConfig {
  const o: Record<string, unknown> = {};
  for (const [k, zero, omitEmpty] of HOST_KEYS) {
    const v = h[k];
    if (omitEmpty) {
      if (k === 'Init' ? v !== undefined && v !== null : !omit(v)) o[k] = v;
      continue;
    }
    o[k] = v === undefined ? zero : v;
  }
  return o as HostConfig;
}
