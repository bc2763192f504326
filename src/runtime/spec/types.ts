// The subset of the OCI runtime spec (config.json) that berth writes, with the
// key order of runtime-spec's Go structs (specs-go/config.go).
export interface User {
  uid: number;
  gid: number;
  additionalGids?: number[];
}
export interface Capabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}
export interface Rlimit {
  type: string;
  hard: number;
  soft: number;
}
export interface Process {
  terminal?: boolean;
  user: User;
  args: string[];
  env: string[];
  cwd: string;
  capabilities?: Capabilities;
  rlimits?: Rlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
}
export interface Mount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}
export interface Namespace {
  type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';
  path?: string;
}
export interface DeviceCgroup {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}
export interface Device {
  path: string;
  type: string;
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}
export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}
export interface Syscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}
export interface Seccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  syscalls?: Syscall[];
}
export interface Resources {
  devices?: DeviceCgroup[];
  memory?: {
    limit?: number;
    reservation?: number;
    swap?: number;
    kernel?: number;
    kernelTCP?: number;
    swappiness?: number;
    disableOOMKiller?: boolean;
  };
  cpu?: {
    shares?: number;
    quota?: number;
    period?: number;
    realtimeRuntime?: number;
    realtimePeriod?: number;
    cpus?: string;
    mems?: string;
  };
  pids?: { limit: number };
  blockIO?: {
    weight?: number;
    weightDevice?: Array<{ major: number; minor: number; weight?: number }>;
    throttleReadBpsDevice?: Array<{ major: number; minor: number; rate: number }>;
    throttleWriteBpsDevice?: Array<{ major: number; minor: number; rate: number }>;
    throttleReadIOPSDevice?: Array<{ major: number; minor: number; rate: number }>;
    throttleWriteIOPSDevice?: Array<{ major: number; minor: number; rate: number }>;
  };
}
export interface Linux {
  sysctl?: Record<string, string>;
  resources?: Resources;
  cgroupsPath?: string;
  namespaces: Namespace[];
  devices?: Device[];
  seccomp?: Seccomp;
  rootfsPropagation?: string;
  maskedPaths?: string[];
  readonlyPaths?: string[];
}
export interface Spec {
  ociVersion: string;
  process: Process;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: Mount[];
  linux: Linux;
}
