// GET /info, /version, /system/df (moby daemon/info.go, info_unix.go, disk_usage.go),
// truthful about what berth has: no containers, volumes or networks yet.
import fs from 'node:fs';
import os from 'node:os';
import type { DaemonConfig } from '../config/index.js';
import type { EventsService } from './events.js';
import type { ImagesService } from './images.js';
import { maskedProxy, proxyConfig } from './proxy.js';

export const BERTH_VERSION = '0.1.0';
export const API_VERSION = '1.41';
export const MIN_API_VERSION = '1.12';

function read(p: string): string | undefined {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}

function osRelease(): { pretty: string; version: string } {
  const text = read('/etc/os-release') ?? read('/usr/lib/os-release') ?? '';
  const get = (k: string) => new RegExp(`^${k}=("?)(.*)\\1$`, 'm').exec(text)?.[2];
  return { pretty: get('PRETTY_NAME') ?? 'Linux', version: get('VERSION_ID') ?? '' };
}

export function cgroupVersion(): '1' | '2' {
  return fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? '2' : '1';
}

function goArch(): string {
  const a = os.arch();
  return a === 'x64' ? 'amd64' : a === 'ia32' ? '386' : a;
}
export const GOARCH = goArch();

export interface SystemDeps {
  config: () => DaemonConfig;
  images: ImagesService;
  containers?: {
    counts(): { total: number; running: number; paused: number; stopped: number };
    diskUsage(): Promise<unknown[]>;
  };
  volumes?: { usage(): unknown[] };
  events: EventsService;
  driverName: string;
  driverStatus: () => Array<[string, string]>;
  engineId: string;
  /** Extra warnings computed at start (listeners without TLS …). */
  warnings: () => string[];
}

export class SystemService {
  constructor(private readonly d: SystemDeps) {}

  version(): Record<string, unknown> {
    const details = {
      ApiVersion: API_VERSION,
      Arch: GOARCH,
      BuildTime: '',
      Experimental: String(this.d.config().experimental),
      GitCommit: '',
      GoVersion: `node${process.version}`,
      KernelVersion: os.release(),
      MinAPIVersion: MIN_API_VERSION,
      Os: 'linux',
    };
    return {
      Platform: { Name: 'berth' },
      Components: [{ Name: 'Engine', Version: BERTH_VERSION, Details: details }],
      Version: BERTH_VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: '',
      GoVersion: `node${process.version}`,
      Os: 'linux',
      Arch: GOARCH,
      KernelVersion: os.release(),
      BuildTime: '',
    };
  }

  private registryConfig(cfg: DaemonConfig): Record<string, unknown> {
    const cidrs = ['127.0.0.0/8'];
    const index: Record<string, unknown> = {};
    for (const r of cfg.insecureRegistries) {
      if (/\/\d+$/.test(r)) {
        if (!cidrs.includes(r)) cidrs.push(r);
      } else index[r] = { Mirrors: [], Name: r, Official: false, Secure: false };
    }
    index['docker.io'] = { Mirrors: [...cfg.registryMirrors], Name: 'docker.io', Official: true, Secure: true };
    const nd = cfg.allowNondistributableArtifacts;
    const out: Record<string, unknown> = {
      AllowNondistributableArtifactsCIDRs: nd.filter((x) => /\/\d+$/.test(x)),
      AllowNondistributableArtifactsHostnames: nd.filter((x) => !/\/\d+$/.test(x)),
      IndexConfigs: index,
      InsecureRegistryCIDRs: cidrs,
      Mirrors: [...cfg.registryMirrors],
    };
    return out;
  }

  info(): Record<string, unknown> {
    const cfg = this.d.config();
    const cg2 = cgroupVersion() === '2';
    const rel = osRelease();
    const cgroupDriver =
      cfg.execOpts.map((o) => /^native\.cgroupdriver=(.*)$/.exec(o)?.[1]).find((x) => x !== undefined) ?? 'cgroupfs';
    const ipv4Forwarding = (read('/proc/sys/net/ipv4/ip_forward') ?? '0').trim() === '1';
    const bridgeNf = (p: string) => (read(`/proc/sys/net/bridge/${p}`) ?? '0').trim() === '1';
    const memCtl = cg2
      ? (read('/sys/fs/cgroup/cgroup.controllers') ?? '').split(/\s+/).includes('memory')
      : fs.existsSync('/sys/fs/cgroup/memory');
    const swap = cg2 ? memCtl : fs.existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes');
    const runtimes: Record<string, unknown> = {
      'io.containerd.runc.v2': { path: 'runc' },
      runc: { path: 'runc' },
    };
    for (const [k, v] of Object.entries(cfg.runtimes)) runtimes[k] = v;
    const warnings = [...this.d.warnings()];
    if (!memCtl) warnings.push('WARNING: No memory limit support');
    if (!swap) warnings.push('WARNING: No swap limit support');
    warnings.push(
      'WARNING: bridge networking is not available yet in berth: containers asking for it get network "none"',
    );
    const counts = this.d.containers?.counts() ?? { total: 0, running: 0, paused: 0, stopped: 0 };
    let nfd = 0;
    try {
      nfd = fs.readdirSync('/proc/self/fd').length;
    } catch {
      nfd = 0;
    }
    return {
      ID: this.d.engineId,
      Containers: counts.total,
      ContainersRunning: counts.running,
      ContainersPaused: counts.paused,
      ContainersStopped: counts.stopped,
      Images: this.d.images.count,
      Driver: this.d.driverName,
      DriverStatus: this.d.driverStatus(),
      SystemStatus: null,
      Plugins: { Volume: [], Network: [], Authorization: null, Log: [] },
      MemoryLimit: memCtl,
      SwapLimit: swap,
      KernelMemory: !cg2,
      KernelMemoryTCP: !cg2,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      IPv4Forwarding: ipv4Forwarding,
      BridgeNfIptables: bridgeNf('bridge-nf-call-iptables'),
      BridgeNfIp6tables: bridgeNf('bridge-nf-call-ip6tables'),
      Debug: cfg.debug,
      NFd: nfd,
      OomKillDisable: !cg2,
      NGoroutines: 0,
      SystemTime: new Date()
        .toISOString()
        .replace('Z', '000000Z')
        .replace(/(\.\d{9})\d*Z$/, '$1Z'),
      LoggingDriver: cfg.logDriver,
      CgroupDriver: cgroupDriver,
      CgroupVersion: cg2 ? '2' : '1',
      NEventsListener: this.d.events.listeners,
      KernelVersion: os.release(),
      OperatingSystem: rel.pretty,
      OSVersion: rel.version,
      OSType: 'linux',
      Architecture: os.machine(),
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: this.registryConfig(cfg),
      NCPU: os.availableParallelism(),
      MemTotal: os.totalmem(),
      GenericResources: null,
      DockerRootDir: cfg.dataRoot,
      HttpProxy: maskedProxy(proxyConfig(cfg)).httpProxy,
      HttpsProxy: maskedProxy(proxyConfig(cfg)).httpsProxy,
      NoProxy: proxyConfig(cfg).noProxy,
      Name: os.hostname(),
      Labels: [...cfg.labels],
      ExperimentalBuild: cfg.experimental,
      ServerVersion: BERTH_VERSION,
      Runtimes: runtimes,
      DefaultRuntime: cfg.defaultRuntime,
      Swarm: {
        NodeID: '',
        NodeAddr: '',
        LocalNodeState: 'inactive',
        ControlAvailable: false,
        Error: '',
        RemoteManagers: null,
      },
      LiveRestoreEnabled: cfg.liveRestore,
      Isolation: '',
      InitBinary: '',
      ContainerdCommit: { ID: '', Expected: '' },
      RuncCommit: { ID: '', Expected: '' },
      InitCommit: { ID: '', Expected: '' },
      SecurityOptions: [],
      Warnings: warnings,
    };
  }

  async diskUsage(types?: string[]): Promise<Record<string, unknown>> {
    const want = (t: string) => !types || types.length === 0 || types.includes(t);
    const out: Record<string, unknown> = {};
    if (want('image')) Object.assign(out, this.d.images.diskUsage());
    else out.LayersSize = 0;
    out.Containers = want('container') ? ((await this.d.containers?.diskUsage()) ?? []) : null;
    out.Volumes = want('volume') ? (this.d.volumes?.usage() ?? []) : null;
    out.BuildCache = want('build-cache') ? [] : null;
    out.BuilderSize = 0;
    return out;
  }
}
