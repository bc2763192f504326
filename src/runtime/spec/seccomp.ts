// Docker's seccomp profile resolved into runc's linux.seccomp exactly as
// moby's profiles/seccomp/seccomp_linux.go setupSeccomp does: the native
// architecture's archMap entry, and each rule kept or dropped by its
// includes/excludes on capabilities (the bounding set), architecture and
// kernel version. The default profile is read at run time from Debian's
// golang-github-docker-docker-dev (a runtime dependency of berth).
import fs from 'node:fs';
import os from 'node:os';
import { invalidArgument } from '../../errors/index.js';
import type { Seccomp, SeccompArg, Syscall } from './types.js';

export const DEFAULT_SECCOMP_PROFILE_PATH =
  '/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json';

interface Filter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}
interface ProfileSyscall {
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[] | null;
  includes?: Filter;
  excludes?: Filter;
}
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures: string[] | null }>;
  syscalls: ProfileSyscall[] | null;
}

const NODE_TO_NATIVE: Record<string, string> = {
  ia32: 'x86',
  x64: 'amd64',
  arm: 'arm',
  arm64: 'arm64',
  mips: 'mipsel',
  mipsel: 'mipsel',
  ppc: 'ppc',
  ppc64: 'ppc64le',
  s390: 's390',
  s390x: 's390x',
};
const NATIVE_TO_SECCOMP: Record<string, string> = {
  x86: 'SCMP_ARCH_X86',
  amd64: 'SCMP_ARCH_X86_64',
  arm: 'SCMP_ARCH_ARM',
  arm64: 'SCMP_ARCH_AARCH64',
  mips64: 'SCMP_ARCH_MIPS64',
  mips64n32: 'SCMP_ARCH_MIPS64N32',
  mipsel64: 'SCMP_ARCH_MIPSEL64',
  mips3l64n32: 'SCMP_ARCH_MIPSEL64N32',
  mipsle: 'SCMP_ARCH_MIPSEL',
  ppc: 'SCMP_ARCH_PPC',
  ppc64: 'SCMP_ARCH_PPC64',
  ppc64le: 'SCMP_ARCH_PPC64LE',
  s390: 'SCMP_ARCH_S390',
  s390x: 'SCMP_ARCH_S390X',
};

export function nativeArch(): string {
  return NODE_TO_NATIVE[process.arch] ?? process.arch;
}

/** "<kernel>.<major>" of a release string like "6.1.0-18-amd64". */
export function parseKernelVersion(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) throw invalidArgument(`failed to parse kernel version "${release}"`);
  return [Number(m[1]), Number(m[2])];
}

function kernelAtLeast(min: string, kv: [number, number]): boolean {
  const [k, maj] = min.split('.').map(Number) as [number, number];
  return kv[0] > k || (kv[0] === k && kv[1] >= maj);
}

let cachedDefault: SeccompProfile | undefined;

/** Loads a profile file (or the default one). */
export function loadSeccompProfile(file = DEFAULT_SECCOMP_PROFILE_PATH): SeccompProfile {
  if (file === DEFAULT_SECCOMP_PROFILE_PATH && cachedDefault) return cachedDefault;
  let p: SeccompProfile;
  try {
    p = JSON.parse(fs.readFileSync(file, 'utf8')) as SeccompProfile;
  } catch (e) {
    throw invalidArgument(`Decoding seccomp profile failed: ${(e as Error).message}`, e);
  }
  if (file === DEFAULT_SECCOMP_PROFILE_PATH) cachedDefault = p;
  return p;
}

export function parseSeccompProfile(body: string): SeccompProfile {
  try {
    return JSON.parse(body) as SeccompProfile;
  } catch (e) {
    throw invalidArgument(`Decoding seccomp profile failed: ${(e as Error).message}`, e);
  }
}

export interface ResolveOptions {
  /** The process's bounding capabilities (CAP_*). */
  bounding: string[];
  arch?: string;
  kernel?: [number, number];
}

/** moby setupSeccomp. Returns undefined for an empty profile. */
export function resolveSeccomp(p: SeccompProfile, o: ResolveOptions): Seccomp | undefined {
  if (!p.defaultAction && !p.syscalls?.length) return undefined;
  if (p.architectures?.length && p.archMap?.length)
    throw invalidArgument(
      "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'",
    );
  const arch = o.arch ?? nativeArch();
  const kv = o.kernel ?? parseKernelVersion(os.release());
  const out: Seccomp = { defaultAction: p.defaultAction };
  if (p.defaultErrnoRet !== undefined) out.defaultErrnoRet = p.defaultErrnoRet;
  let arches: string[] | undefined = p.architectures?.length ? [...p.architectures] : undefined;
  const sArch = NATIVE_TO_SECCOMP[arch];
  if (p.archMap?.length && sArch) {
    const e = p.archMap.find((a) => a.architecture === sArch);
    if (e) arches = [e.architecture, ...(e.subArchitectures ?? [])];
  }
  if (arches) out.architectures = arches;
  const calls: Syscall[] = [];
  for (const call of p.syscalls ?? []) {
    const ex = call.excludes ?? {};
    const inc = call.includes ?? {};
    if (ex.arches?.length && ex.arches.includes(arch)) continue;
    if (ex.caps?.length && ex.caps.some((c) => o.bounding.includes(c))) continue;
    if (ex.minKernel && kernelAtLeast(ex.minKernel, kv)) continue;
    if (inc.arches?.length && !inc.arches.includes(arch)) continue;
    if (inc.caps?.length && !inc.caps.every((c) => o.bounding.includes(c))) continue;
    if (inc.minKernel && !kernelAtLeast(inc.minKernel, kv)) continue;
    if (call.name && call.names?.length)
      throw invalidArgument("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'");
    const s: Syscall = { names: call.name ? [call.name] : (call.names ?? []), action: call.action };
    if (call.errnoRet !== undefined && call.errnoRet !== null) s.errnoRet = call.errnoRet;
    if (call.args?.length)
      s.args = call.args.map((a) => ({
        index: a.index,
        value: a.value,
        ...(a.valueTwo ? { valueTwo: a.valueTwo } : {}),
        op: a.op,
      }));
    calls.push(s);
  }
  out.syscalls = calls;
  return out;
}
