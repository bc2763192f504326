// Validation of a create request with dockerd 20.10's messages
// (daemon/container.go verifyContainerSettings, daemon_unix.go
// verifyPlatformContainerSettings, parseSecurityOpt; the CLI's sysctl check).
import { invalidArgument } from '../errors/index.js';
import { validateMountConfig } from '../volume/mounts.js';
import { validateHealthcheck } from './health.js';
import { validateRestartPolicy } from './restart.js';
import type { ContainerConfig, HostConfig } from './types.js';

export const ALL_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
];

/** moby caps.NormalizeLegacyCapabilities: upper-case, CAP_ prefix, ALL kept; unknown → error. */
export function normalizeCaps(caps: string[] | null | undefined): string[] {
  const out: string[] = [];
  for (let c of caps ?? []) {
    c = c.toUpperCase();
    if (c === 'ALL') {
      out.push(c);
      continue;
    }
    if (!c.startsWith('CAP_')) c = `CAP_${c}`;
    if (!ALL_CAPS.includes(c)) throw invalidArgument(`unknown capability: "${c}"`);
    out.push(c);
  }
  return out;
}

const SIGNALS = new Set([
  'ABRT',
  'ALRM',
  'BUS',
  'CHLD',
  'CLD',
  'CONT',
  'FPE',
  'HUP',
  'ILL',
  'INT',
  'IO',
  'IOT',
  'KILL',
  'PIPE',
  'POLL',
  'PROF',
  'PWR',
  'QUIT',
  'SEGV',
  'STKFLT',
  'STOP',
  'SYS',
  'TERM',
  'TRAP',
  'TSTP',
  'TTIN',
  'TTOU',
  'URG',
  'USR1',
  'USR2',
  'VTALRM',
  'WINCH',
  'XCPU',
  'XFSZ',
]);

/** moby signal.ParseSignal: a number, NAME, SIGNAME or RTMIN+n. */
export function parseSignal(s: string): string {
  if (/^\d+$/.test(s)) {
    if (Number(s) === 0 || Number(s) > 64) throw invalidArgument(`Invalid signal: ${s}`);
    return s;
  }
  const n = s.toUpperCase().replace(/^SIG/, '');
  if (SIGNALS.has(n) || /^RTMIN(\+([1-9]|1[0-5]))?$/.test(n) || /^RTMAX(-([1-9]|1[0-4]))?$/.test(n)) return `SIG${n}`;
  throw invalidArgument(`Invalid signal: ${s}`);
}

const VALID_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

/** Only namespaced sysctls (IPC: kernel.msg*, sem, shm*, fs.mqueue.*; network: net.*). */
export function validateSysctl(key: string, value: string, networkMode: string, ipcMode: string): void {
  const kv = `${key}=${value}`;
  if (VALID_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) {
    if (ipcMode === 'host') throw invalidArgument(`sysctl '${kv}' is not allowed in host IPC namespace`);
    return;
  }
  if (key.startsWith('net.')) {
    if (networkMode === 'host') throw invalidArgument(`sysctl '${kv}' is not allowed in host network namespace`);
    return;
  }
  throw invalidArgument(`sysctl '${kv}' is not whitelisted`);
}

export interface SecurityOptions {
  noNewPrivileges: boolean;
  seccompProfile: string;
  appArmorProfile: string;
  labelOpts: string[];
}

/** dockerd's parseSecurityOpt (daemon default for no-new-privileges first). */
export function parseSecurityOpts(opts: string[] | null | undefined, daemonNoNewPrivileges = false): SecurityOptions {
  const r: SecurityOptions = {
    noNewPrivileges: daemonNoNewPrivileges,
    seccompProfile: '',
    appArmorProfile: '',
    labelOpts: [],
  };
  for (const opt of opts ?? []) {
    if (opt === 'no-new-privileges') {
      r.noNewPrivileges = true;
      continue;
    }
    if (opt === 'disable') {
      r.labelOpts.push('disable');
      continue;
    }
    let i = opt.indexOf('=');
    if (i < 0) i = opt.indexOf(':');
    if (i < 0) throw invalidArgument(`invalid --security-opt 1: "${opt}"`);
    const k = opt.slice(0, i);
    const v = opt.slice(i + 1);
    switch (k) {
      case 'label':
        r.labelOpts.push(v);
        break;
      case 'apparmor':
        r.appArmorProfile = v;
        break;
      case 'seccomp':
        r.seccompProfile = v;
        break;
      case 'no-new-privileges': {
        const b = parseGoBool(v);
        if (b === undefined) throw invalidArgument(`invalid --security-opt 2: "${opt}"`);
        r.noNewPrivileges = b;
        break;
      }
      default:
        throw invalidArgument(`invalid --security-opt 2: "${opt}"`);
    }
  }
  return r;
}

export function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

const DEVICE_RULE = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/;

export function validateConfig(c: ContainerConfig): void {
  if (c.WorkingDir && !c.WorkingDir.startsWith('/'))
    throw invalidArgument(`the working directory '${c.WorkingDir}' is invalid, it needs to be an absolute path`);
  if (c.StopSignal) parseSignal(c.StopSignal);
  for (const e of c.Env ?? []) {
    if (e.startsWith('=')) throw invalidArgument(`invalid environment variable: ${e}`);
  }
  validateHealthcheck(c.Healthcheck);
}

export interface HostLimits {
  numCpus: number;
}

export function validateHostConfig(h: HostConfig, c: ContainerConfig, limits: HostLimits): string[] {
  const warnings: string[] = [];
  const restartName = h.RestartPolicy?.Name ?? '';
  if (h.AutoRemove && restartName !== '' && restartName !== 'no')
    throw invalidArgument("can't create 'AutoRemove' container with restart policy");
  for (const m of h.Mounts ?? []) validateMountConfig(m);
  validateRestartPolicy(h.RestartPolicy);
  try {
    normalizeCaps(h.CapAdd);
  } catch (e) {
    throw invalidArgument(`invalid CapAdd: ${(e as Error).message}`);
  }
  try {
    normalizeCaps(h.CapDrop);
  } catch (e) {
    throw invalidArgument(`invalid CapDrop: ${(e as Error).message}`);
  }
  if (h.Isolation && h.Isolation !== 'default') throw invalidArgument(`invalid isolation '${h.Isolation}' on linux`);
  // resources (verifyPlatformContainerSettings)
  const mem = h.Memory ?? 0;
  if (mem > 0 && mem < 6 * 1024 * 1024) throw invalidArgument('Minimum memory limit allowed is 6MB');
  const swap = h.MemorySwap ?? 0;
  if (mem > 0 && swap > 0 && swap < mem)
    throw invalidArgument('Minimum memoryswap limit should be larger than memory limit, see usage');
  if (mem === 0 && swap > 0)
    throw invalidArgument('You should always set the Memory limit when using Memoryswap limit, see usage');
  const sw = h.MemorySwappiness;
  if (sw !== undefined && sw !== null && sw !== -1 && (sw < 0 || sw > 100))
    throw invalidArgument(`Invalid value: ${sw}, valid memory swappiness range is 0-100`);
  const res = h.MemoryReservation ?? 0;
  if (res > 0 && res < 6 * 1024 * 1024) throw invalidArgument('Minimum memory reservation allowed is 6MB');
  if (mem > 0 && res > 0 && mem < res)
    throw invalidArgument('Minimum memory limit can not be less than memory reservation limit, see usage');
  if (h.OomKillDisable && mem === 0)
    warnings.push(
      'OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.',
    );
  const nano = h.NanoCpus ?? 0;
  if (nano > 0 && (h.CpuPeriod ?? 0) > 0)
    throw invalidArgument('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (nano > 0 && (h.CpuQuota ?? 0) > 0)
    throw invalidArgument('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  if (nano < 0 || nano > limits.numCpus * 1e9)
    throw invalidArgument(
      `Range of CPUs is from 0.01 to ${limits.numCpus}.00, as there are only ${limits.numCpus} CPUs available`,
    );
  const period = h.CpuPeriod ?? 0;
  if (period !== 0 && (period < 1000 || period > 1_000_000))
    throw invalidArgument('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  if ((h.CpuQuota ?? 0) > 0 && (h.CpuQuota ?? 0) < 1000)
    throw invalidArgument('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  const bw = h.BlkioWeight ?? 0;
  if (bw > 0 && (bw < 10 || bw > 1000)) throw invalidArgument('Range of blkio weight is from 10 to 1000');
  if ((h.ShmSize ?? 0) < 0) throw invalidArgument('SHM size can not be less than 0');
  const oom = h.OomScoreAdj ?? 0;
  if (oom < -1000 || oom > 1000)
    throw invalidArgument(`Invalid value ${oom}, range for oom score adj is [-1000, 1000]`);
  if (h.CgroupnsMode && !['host', 'private'].includes(h.CgroupnsMode))
    throw invalidArgument(`invalid cgroup namespace mode: ${h.CgroupnsMode}`);
  // namespaces
  const ipc = h.IpcMode ?? '';
  if (!['', 'private', 'shareable', 'host', 'none'].includes(ipc) && !/^container:.+/.test(ipc))
    throw invalidArgument(`Invalid IPC mode: ${ipc}`);
  const pid = h.PidMode ?? '';
  if (!['', 'host'].includes(pid) && !/^container:.+/.test(pid)) throw invalidArgument(`Invalid PID mode: ${pid}`);
  const uts = h.UTSMode ?? '';
  if (!['', 'host'].includes(uts)) throw invalidArgument(`Invalid UTS mode: ${uts}`);
  const net = h.NetworkMode ?? '';
  if ((net === 'host' || net.startsWith('container:')) && c.MacAddress)
    throw invalidArgument('conflicting options: mac-address and the network mode');
  if (net.startsWith('container:') && c.Hostname)
    throw invalidArgument('conflicting options: hostname and the network mode');
  if (net === 'host' && h.PublishAllPorts) warnings.push('Published ports are discarded when using host network mode');
  for (const [k, v] of Object.entries(h.Sysctls ?? {})) validateSysctl(k, v, net, ipc);
  for (const r of h.DeviceCgroupRules ?? []) {
    if (!DEVICE_RULE.test(r)) throw invalidArgument(`invalid device cgroup rule format: '${r}'`);
  }
  for (const u of h.Ulimits ?? []) {
    if (u.Soft > u.Hard)
      throw invalidArgument(`ulimit soft limit must be less than or equal to hard limit: ${u.Soft} > ${u.Hard}`);
  }
  for (const t of Object.keys(h.Tmpfs ?? {})) {
    if (!t.startsWith('/')) throw invalidArgument(`invalid mount path: '${t}' mount path must be absolute`);
  }
  return warnings;
}
