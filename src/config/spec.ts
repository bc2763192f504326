// Every dockerd setting: its daemon.json key, command-line flag, type, default,
// and whether SIGHUP reloads it. One table drives the flag parser, the --help
// text, daemon.json type checking, the flag/file conflict check and reload.
import os from 'node:os';
import path from 'node:path';

export interface Ulimit {
  name: string;
  soft: number;
  hard: number;
}

export interface Runtime {
  path?: string;
  runtimeArgs?: string[];
  runtimeType?: string;
  options?: Record<string, unknown>;
}

export interface AddressPool {
  base: string;
  size: number;
}

/** The daemon's whole configuration, after defaults, daemon.json and flags are merged. Frozen. */
export interface DaemonConfig {
  // daemon process, API listeners, logging
  debug: boolean;
  logLevel: string;
  logFormat: string;
  rawLogs: boolean;
  hosts: string[];
  group: string;
  pidfile: string;
  dataRoot: string;
  execRoot: string;
  tls: boolean;
  tlsverify: boolean;
  tlscacert: string;
  tlscert: string;
  tlskey: string;
  apiCorsHeader: string;
  authorizationPlugins: string[];
  metricsAddr: string;
  experimental: boolean;
  features: Record<string, boolean>;
  builder: Record<string, unknown>;
  labels: string[];
  shutdownTimeout: number;
  liveRestore: boolean;
  oomScoreAdjust: number;
  rootless: boolean;
  networkDiagnosticPort: number;
  deprecatedKeyPath: string;
  // images, storage, registries
  storageDriver: string;
  storageOpts: string[];
  maxConcurrentDownloads: number;
  maxConcurrentUploads: number;
  maxDownloadAttempts: number;
  registryMirrors: string[];
  /** berth extension: mirrors for any registry, by host[:port] (daemon.json "berth-registry-mirrors"). */
  berthRegistryMirrors: Record<string, string[]>;
  insecureRegistries: string[];
  allowNondistributableArtifacts: string[];
  httpProxy: string;
  httpsProxy: string;
  noProxy: string;
  // containers and runtimes
  runtimes: Record<string, Runtime>;
  defaultRuntime: string;
  execOpts: string[];
  containerd: string;
  containerdNamespace: string;
  containerdPluginNamespace: string;
  criContainerd: boolean;
  cgroupParent: string;
  cpuRtPeriod: number;
  cpuRtRuntime: number;
  defaultCgroupnsMode: string;
  defaultIpcMode: string;
  defaultShmSize: number;
  defaultUlimits: Record<string, Ulimit>;
  init: boolean;
  initPath: string;
  noNewPrivileges: boolean;
  seccompProfile: string;
  selinuxEnabled: boolean;
  usernsRemap: string;
  cdiSpecDirs: string[];
  logDriver: string;
  logOpts: Record<string, string>;
  // networking
  bridge: string;
  bip: string;
  bip6: string;
  fixedCidr: string;
  fixedCidrV6: string;
  defaultGateway: string;
  defaultGatewayV6: string;
  defaultAddressPools: AddressPool[];
  defaultNetworkOpts: Record<string, Record<string, string>>;
  dns: string[];
  dnsOpts: string[];
  dnsSearch: string[];
  hostGatewayIp: string;
  icc: boolean;
  ip: string;
  ipForward: boolean;
  ipForwardNoDrop: boolean;
  ipMasq: boolean;
  iptables: boolean;
  ip6tables: boolean;
  ipv6: boolean;
  mtu: number;
  networkControlPlaneMtu: number;
  userlandProxy: boolean;
  userlandProxyPath: string;
  firewallBackend: string;
  // swarm and the legacy cluster store (accepted, never implemented)
  clusterAdvertise: string;
  clusterStore: string;
  clusterStoreOpts: Record<string, string>;
  nodeGenericResources: string[];
  swarmDefaultAdvertiseAddr: string;
  swarmRaftHeartbeatTick: number;
  swarmRaftElectionTick: number;
}

export type Kind =
  | 'string'
  | 'bool'
  | 'int'
  | 'list'
  | 'map'
  | 'bytes'
  | 'ulimits'
  | 'runtimes'
  | 'pools'
  | 'features'
  | 'mapmap'
  | 'maplist'
  | 'object';

export interface Setting {
  /** daemon.json key; also the name used in setKeys, changed and needRestart. */
  key: string;
  prop: keyof DaemonConfig;
  kind: Kind;
  /** long flag name (without --); absent for settings only daemon.json can set. */
  flag?: string;
  short?: string;
  /** type word shown in --help (pflag's). */
  flagType?: string;
  help: string;
  /** SIGHUP applies it. */
  reload?: boolean;
  hidden?: boolean;
  deprecated?: string;
  /** where in daemon.json it lives when nested (proxies). */
  filePath?: [string, string];
}

const homeDocker = () => {
  const dir = process.env.DOCKER_CERT_PATH || process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
  return dir;
};

export const DEFAULT_CONFIG_FILE = '/etc/berth/daemon.json';
export const DEFAULT_UNIX_SOCKET = '/var/run/berth.sock';
export const DEFAULT_HOST = `unix://${DEFAULT_UNIX_SOCKET}`;
export const DEFAULT_TCP_PORT = 2375;
export const DEFAULT_TLS_TCP_PORT = 2376;
/** Runtimes that exist without being declared (dockerd 20.10: runc and the containerd v2 shim). */
export const BUILTIN_RUNTIMES = ['runc', 'io.containerd.runc.v2'];
export const STOCK_RUNTIME = 'runc';

export const DEFAULTS: DaemonConfig = deepFreeze({
  debug: false,
  logLevel: 'info',
  logFormat: 'text',
  rawLogs: false,
  hosts: [DEFAULT_HOST],
  group: 'docker',
  pidfile: '/var/run/berth.pid',
  dataRoot: '/var/lib/berth',
  execRoot: '/var/run/berth',
  tls: false,
  tlsverify: false,
  tlscacert: path.join(homeDocker(), 'ca.pem'),
  tlscert: path.join(homeDocker(), 'cert.pem'),
  tlskey: path.join(homeDocker(), 'key.pem'),
  apiCorsHeader: '',
  authorizationPlugins: [],
  metricsAddr: '',
  experimental: false,
  features: {},
  builder: {},
  labels: [],
  shutdownTimeout: 15,
  liveRestore: false,
  oomScoreAdjust: -500,
  rootless: false,
  networkDiagnosticPort: 0,
  deprecatedKeyPath: '',
  storageDriver: 'overlay2',
  storageOpts: [],
  maxConcurrentDownloads: 3,
  maxConcurrentUploads: 5,
  maxDownloadAttempts: 5,
  registryMirrors: [],
  berthRegistryMirrors: {},
  insecureRegistries: [],
  allowNondistributableArtifacts: [],
  httpProxy: '',
  httpsProxy: '',
  noProxy: '',
  runtimes: {},
  defaultRuntime: STOCK_RUNTIME,
  execOpts: [],
  containerd: '',
  containerdNamespace: 'moby',
  containerdPluginNamespace: 'plugins.moby',
  criContainerd: false,
  cgroupParent: '',
  cpuRtPeriod: 0,
  cpuRtRuntime: 0,
  defaultCgroupnsMode: 'private',
  defaultIpcMode: 'private',
  defaultShmSize: 64 * 1024 * 1024,
  defaultUlimits: {},
  init: false,
  initPath: '',
  noNewPrivileges: false,
  seccompProfile: 'builtin',
  selinuxEnabled: false,
  usernsRemap: '',
  cdiSpecDirs: [],
  logDriver: 'json-file',
  logOpts: {},
  bridge: '',
  bip: '',
  bip6: '',
  fixedCidr: '',
  fixedCidrV6: '',
  defaultGateway: '',
  defaultGatewayV6: '',
  defaultAddressPools: [],
  defaultNetworkOpts: {},
  dns: [],
  dnsOpts: [],
  dnsSearch: [],
  hostGatewayIp: '',
  icc: true,
  ip: '0.0.0.0',
  ipForward: true,
  ipForwardNoDrop: false,
  ipMasq: true,
  iptables: true,
  ip6tables: true,
  ipv6: false,
  mtu: 1500,
  networkControlPlaneMtu: 1500,
  userlandProxy: true,
  userlandProxyPath: '',
  firewallBackend: '',
  clusterAdvertise: '',
  clusterStore: '',
  clusterStoreOpts: {},
  nodeGenericResources: [],
  swarmDefaultAdvertiseAddr: '',
  swarmRaftHeartbeatTick: 0,
  swarmRaftElectionTick: 0,
});

const S = (key: string, prop: keyof DaemonConfig, kind: Kind, help: string, extra: Partial<Setting> = {}): Setting => ({
  key,
  prop,
  kind,
  help,
  flag: key,
  ...extra,
});
const fileOnly = { flag: undefined } as const;

/** Sorted by flag name, as `dockerd --help` lists them. */
export const SETTINGS: readonly Setting[] = Object.freeze([
  S('runtimes', 'runtimes', 'runtimes', 'Register an additional OCI compatible runtime', {
    flag: 'add-runtime',
    flagType: 'runtime',
    reload: true,
  }),
  S(
    'allow-nondistributable-artifacts',
    'allowNondistributableArtifacts',
    'list',
    'Allow push of nondistributable artifacts to registry',
    { reload: true },
  ),
  S('api-cors-header', 'apiCorsHeader', 'string', 'Set CORS headers in the Engine API', {
    deprecated: 'accessing the API through a browser is insecure; use a reverse proxy if you need CORS headers',
  }),
  S('authorization-plugins', 'authorizationPlugins', 'list', 'Authorization plugins to load', {
    flag: 'authorization-plugin',
    reload: true,
  }),
  S(
    'berth-registry-mirrors',
    'berthRegistryMirrors',
    'maplist',
    'Registry mirrors for any registry, by host[:port] (berth extension; daemon.json only)',
    { ...fileOnly, reload: true },
  ),
  S('bip', 'bip', 'string', 'Specify network bridge IP'),
  S('bip6', 'bip6', 'string', 'IPv6 address for the default bridge'),
  S('bridge', 'bridge', 'string', 'Attach containers to a network bridge', { short: 'b' }),
  S('builder', 'builder', 'object', 'BuildKit garbage collection settings', fileOnly),
  S('cdi-spec-dirs', 'cdiSpecDirs', 'list', 'CDI specification directories to use', { flag: 'cdi-spec-dir' }),
  S('cgroup-parent', 'cgroupParent', 'string', 'Set parent cgroup for all containers'),
  S('cluster-advertise', 'clusterAdvertise', 'string', 'Address or interface name to advertise', {
    deprecated: 'host-discovery and overlay networks with external k/v stores are deprecated',
  }),
  S('cluster-store', 'clusterStore', 'string', 'URL of the distributed storage backend', {
    deprecated: 'host-discovery and overlay networks with external k/v stores are deprecated',
  }),
  S('cluster-store-opts', 'clusterStoreOpts', 'map', 'Set cluster store options', {
    flag: 'cluster-store-opt',
    deprecated: 'host-discovery and overlay networks with external k/v stores are deprecated',
  }),
  S('containerd', 'containerd', 'string', 'containerd grpc address'),
  S('containerd-namespace', 'containerdNamespace', 'string', 'Containerd namespace to use'),
  S('containerd-plugin-namespace', 'containerdPluginNamespace', 'string', 'Containerd namespace to use for plugins', {
    flag: 'containerd-plugins-namespace',
  }),
  S(
    'cpu-rt-period',
    'cpuRtPeriod',
    'int',
    'Limit the CPU real-time period in microseconds for the parent cgroup for all containers',
  ),
  S(
    'cpu-rt-runtime',
    'cpuRtRuntime',
    'int',
    'Limit the CPU real-time runtime in microseconds for the parent cgroup for all containers',
  ),
  S('cri-containerd', 'criContainerd', 'bool', 'start containerd with cri'),
  S('data-root', 'dataRoot', 'string', 'Root directory of persistent Docker state'),
  S('debug', 'debug', 'bool', 'Enable debug mode', { short: 'D', reload: true }),
  S('default-address-pools', 'defaultAddressPools', 'pools', 'Default address pools for node specific local networks', {
    flag: 'default-address-pool',
    flagType: 'pool-options',
  }),
  S(
    'default-cgroupns-mode',
    'defaultCgroupnsMode',
    'string',
    'Default mode for containers cgroup namespace ("host" | "private")',
    {
      reload: true,
    },
  ),
  S('default-gateway', 'defaultGateway', 'string', 'Container default gateway IPv4 address', { flagType: 'ip' }),
  S('default-gateway-v6', 'defaultGatewayV6', 'string', 'Container default gateway IPv6 address', { flagType: 'ip' }),
  S('default-ipc-mode', 'defaultIpcMode', 'string', 'Default mode for containers ipc ("shareable" | "private")', {
    reload: true,
  }),
  S('default-network-opts', 'defaultNetworkOpts', 'mapmap', 'Default network options', {
    flag: 'default-network-opt',
    flagType: 'mapmap',
  }),
  S('default-runtime', 'defaultRuntime', 'string', 'Default OCI runtime for containers', { reload: true }),
  S('default-shm-size', 'defaultShmSize', 'bytes', 'Default shm size for containers', { reload: true }),
  S('default-ulimits', 'defaultUlimits', 'ulimits', 'Default ulimits for containers', {
    flag: 'default-ulimit',
    flagType: 'ulimit',
  }),
  S('deprecated-key-path', 'deprecatedKeyPath', 'string', 'Path to the (unused) daemon trust key', fileOnly),
  S('dns', 'dns', 'list', 'DNS server to use'),
  S('dns-opts', 'dnsOpts', 'list', 'DNS options to use', { flag: 'dns-opt' }),
  S('dns-search', 'dnsSearch', 'list', 'DNS search domains to use'),
  S('exec-opts', 'execOpts', 'list', 'Runtime execution options', { flag: 'exec-opt' }),
  S('exec-root', 'execRoot', 'string', 'Root directory for execution state files'),
  S('experimental', 'experimental', 'bool', 'Enable experimental features'),
  S('features', 'features', 'features', 'Enable or disable daemon features', { ...fileOnly, reload: true }),
  S('firewall-backend', 'firewallBackend', 'string', 'Firewall backend to use, iptables or nftables'),
  S('fixed-cidr', 'fixedCidr', 'string', 'IPv4 subnet for fixed IPs'),
  S('fixed-cidr-v6', 'fixedCidrV6', 'string', 'IPv6 subnet for fixed IPs'),
  S('group', 'group', 'string', 'Group for the unix socket', { short: 'G' }),
  S(
    'host-gateway-ip',
    'hostGatewayIp',
    'string',
    "IP address that the special 'host-gateway' string in --add-host resolves to",
    {
      flagType: 'ip',
    },
  ),
  S('hosts', 'hosts', 'list', 'Daemon socket(s) to connect to', { flag: 'host', short: 'H' }),
  S('http-proxy', 'httpProxy', 'string', 'HTTP proxy URL to use for outgoing traffic', {
    filePath: ['proxies', 'http-proxy'],
  }),
  S('https-proxy', 'httpsProxy', 'string', 'HTTPS proxy URL to use for outgoing traffic', {
    filePath: ['proxies', 'https-proxy'],
  }),
  S('icc', 'icc', 'bool', 'Enable inter-container communication'),
  S('init', 'init', 'bool', 'Run an init in the container to forward signals and reap processes'),
  S('init-path', 'initPath', 'string', 'Path to the docker-init binary'),
  S('insecure-registries', 'insecureRegistries', 'list', 'Enable insecure registry communication', {
    flag: 'insecure-registry',
    reload: true,
  }),
  S('ip', 'ip', 'string', 'Default IP when binding container ports', { flagType: 'ip' }),
  S('ip-forward', 'ipForward', 'bool', 'Enable net.ipv4.ip_forward'),
  S(
    'ip-forward-no-drop',
    'ipForwardNoDrop',
    'bool',
    'Do not set the filter-FORWARD policy to DROP when enabling IP forwarding',
  ),
  S('ip-masq', 'ipMasq', 'bool', 'Enable IP masquerading'),
  S('ip6tables', 'ip6tables', 'bool', 'Enable addition of ip6tables rules'),
  S('iptables', 'iptables', 'bool', 'Enable addition of iptables rules'),
  S('ipv6', 'ipv6', 'bool', 'Enable IPv6 networking'),
  S('labels', 'labels', 'list', 'Set key=value labels to the daemon', { flag: 'label', reload: true }),
  S('live-restore', 'liveRestore', 'bool', 'Enable live restore of docker when containers are still running', {
    reload: true,
  }),
  S('log-driver', 'logDriver', 'string', 'Default driver for container logs'),
  S('log-format', 'logFormat', 'string', 'Set the logging format ("text"|"json")'),
  S('log-level', 'logLevel', 'string', 'Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")', {
    short: 'l',
    reload: true,
  }),
  S('log-opts', 'logOpts', 'map', 'Default log driver options for containers', { flag: 'log-opt' }),
  S('max-concurrent-downloads', 'maxConcurrentDownloads', 'int', 'Set the max concurrent downloads', { reload: true }),
  S('max-concurrent-uploads', 'maxConcurrentUploads', 'int', 'Set the max concurrent uploads', { reload: true }),
  S('max-download-attempts', 'maxDownloadAttempts', 'int', 'Set the max download attempts for each pull', {
    reload: true,
  }),
  S('metrics-addr', 'metricsAddr', 'string', 'Set default address and port to serve the metrics api on'),
  S('mtu', 'mtu', 'int', 'Set the containers network MTU'),
  S('network-control-plane-mtu', 'networkControlPlaneMtu', 'int', 'Network Control plane MTU'),
  S('network-diagnostic-port', 'networkDiagnosticPort', 'int', 'TCP port number of the network diagnostic server', {
    hidden: true,
    reload: true,
  }),
  S('no-new-privileges', 'noNewPrivileges', 'bool', 'Set no-new-privileges by default for new containers'),
  S('no-proxy', 'noProxy', 'string', 'Comma-separated list of hosts or IP addresses for which the proxy is skipped', {
    filePath: ['proxies', 'no-proxy'],
  }),
  S('node-generic-resources', 'nodeGenericResources', 'list', 'Advertise user-defined resource', {
    flag: 'node-generic-resource',
  }),
  S('oom-score-adjust', 'oomScoreAdjust', 'int', 'Set the oom_score_adj for the daemon'),
  S('pidfile', 'pidfile', 'string', 'Path to use for daemon PID file', { short: 'p' }),
  S('raw-logs', 'rawLogs', 'bool', 'Full timestamps without ANSI coloring'),
  S('registry-mirrors', 'registryMirrors', 'list', 'Preferred Docker registry mirror', {
    flag: 'registry-mirror',
    reload: true,
  }),
  S('rootless', 'rootless', 'bool', 'Enable rootless mode; typically used with RootlessKit'),
  S('seccomp-profile', 'seccompProfile', 'string', 'Path to seccomp profile'),
  S('selinux-enabled', 'selinuxEnabled', 'bool', 'Enable selinux support'),
  S('shutdown-timeout', 'shutdownTimeout', 'int', 'Set the default shutdown timeout', { reload: true }),
  S('storage-driver', 'storageDriver', 'string', 'Storage driver to use', { short: 's' }),
  S('storage-opts', 'storageOpts', 'list', 'Storage driver options', { flag: 'storage-opt' }),
  S(
    'swarm-default-advertise-addr',
    'swarmDefaultAdvertiseAddr',
    'string',
    'Set default address or interface for swarm advertised address',
  ),
  S('swarm-raft-election-tick', 'swarmRaftElectionTick', 'int', 'Swarm raft election tick', fileOnly),
  S('swarm-raft-heartbeat-tick', 'swarmRaftHeartbeatTick', 'int', 'Swarm raft heartbeat tick', fileOnly),
  S('tls', 'tls', 'bool', 'Use TLS; implied by --tlsverify'),
  S('tlscacert', 'tlscacert', 'string', 'Trust certs signed only by this CA'),
  S('tlscert', 'tlscert', 'string', 'Path to TLS certificate file'),
  S('tlskey', 'tlskey', 'string', 'Path to TLS key file'),
  S('tlsverify', 'tlsverify', 'bool', 'Use TLS and verify the remote'),
  S('userland-proxy', 'userlandProxy', 'bool', 'Use userland proxy for loopback traffic'),
  S('userland-proxy-path', 'userlandProxyPath', 'string', 'Path to the userland proxy binary'),
  S('userns-remap', 'usernsRemap', 'string', 'User/Group setting for user namespaces'),
]);

export const BY_KEY: ReadonlyMap<string, Setting> = new Map(SETTINGS.map((s) => [s.key, s]));
export const BY_FLAG: ReadonlyMap<string, Setting> = new Map(
  SETTINGS.filter((s) => s.flag).map((s) => [s.flag as string, s]),
);
export const BY_PROP: ReadonlyMap<string, Setting> = new Map(SETTINGS.map((s) => [s.prop, s]));

/** daemon.json keys SIGHUP applies; every other changed key needs a restart. */
export const RELOADABLE_KEYS: readonly string[] = Object.freeze(SETTINGS.filter((s) => s.reload).map((s) => s.key));

export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
