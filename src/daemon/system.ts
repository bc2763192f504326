// GET /info, /version, /system/df (moby daemon/info.go, info_unix.go, disk_usage.go),
// truthful about what berth has: no containers, volumes or networks yet.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import type { DaemonConfig } from '../config/index.js';
import { initBinary } from '../runtime/spec/index.js';
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

/** `<bin> --version` once per binary (moby parseRuntimeVersion / parseInitVersion). */
const versionCache = new Map<string, string>();
function versionOf(bin: string): string {
  let v = versionCache.get(bin);
  if (v === undefined) {
    try {
      v = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      v = '';
    }
    versionCache.set(bin, v);
  }
  return v;
}

/** runc's commit: the `commit:` line of `runc --version` (what `docker info` shows as "runc version"). */
export function runcCommit(bin = 'runc'): string {
  return /^commit:\s*(\S+)/m.exec(versionOf(bin))?.[1] ?? '';
}

/** The init (`--init`) binary and its version: `tini version 0.19.0 - git.de40ad0` → de40ad0, else 0.19.0. */
export function initInfo(initPath?: string): { binary: string; commit: string } {
  let binary = '';
  try {
    binary = initBinary(initPath || undefined);
  } catch {
    return { binary: '', commit: '' };
  }
  const out = versionOf(binary);
  const m = /version\s+(\S+)(?:\s+-\s+git\.(\S+))?/.exec(out);
  return { binary, commit: m?.[2] ?? m?.[1] ?? '' };
}

/** The log drivers the shim writes (docker info Plugins.Log). */
export const LOG_DRIVERS = ['json-file', 'local', 'none'] as const;

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
    // runc is built in; everything else only when configured under `runtimes`
    const runtimes: Record<string, unknown> = { runc: { path: 'runc' } };
    for (const [k, v] of Object.entries(cfg.runtimes)) runtimes[k] = v;
    if (cfg.defaultRuntime && !runtimes[cfg.defaultRuntime]) runtimes[cfg.defaultRuntime] = { path: 'runc' };
    const runcPath = (cfg.runtimes.runc as { path?: string } | undefined)?.path || 'runc';
    const init = initInfo(cfg.initPath);
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
      // what berth really has: the local volume driver, the host and null
      // networks (bridge comes with its own issue), these log drivers
      Plugins: { Volume: ['local'], Network: ['host', 'null'], Authorization: null, Log: [...LOG_DRIVERS] },
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
      // what --init really runs (Debian's tini, found as docker-init/tini-static/tini or init-path)
      InitBinary: init.binary,
      ContainerdCommit: { ID: '', Expected: '' },
      RuncCommit: { ID: runcCommit(runcPath), Expected: '' },
      InitCommit: { ID: init.commit, Expected: '' },
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
