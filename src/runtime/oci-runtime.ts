// The OCI runtime CLI (runc, crun, or any runtime registered under `runtimes`
// in daemon.json). Every call gets `--root <exec-root>/runtime-<name>` so the
// runtime's own state stays inside berth's exec-root, plus --systemd-cgroup
// when exec-opts has native.cgroupdriver=systemd.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BerthError, failedPrecondition, invalidArgument, notFound } from '../errors/index.js';

export interface OciRuntimeOptions {
  /** The name berth knows the runtime by ("runc", "crun", a daemon.json key). */
  name: string;
  /** Executable (absolute path or a name looked up in PATH). */
  path: string;
  /** runtimeArgs from daemon.json, placed before the subcommand. */
  runtimeArgs?: string[];
  /** Usually `<exec-root>/runtime-<name>`. */
  root: string;
  systemdCgroup?: boolean;
}

/** `runc state` output. */
export interface OciState {
  ociVersion: string;
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped' | string;
  bundle: string;
  rootfs?: string;
  created?: string;
  annotations?: Record<string, string>;
}

/** The runtime failed: `stderr` holds its message (runc's last error line). */
export class RuntimeError extends BerthError {
  constructor(
    readonly runtime: string,
    readonly args: string[],
    readonly stderr: string,
    kind: BerthError['kind'] = 'internal',
  ) {
    super(kind, `${runtime} ${args.join(' ')}: ${stderr || 'failed'}`);
    this.name = 'RuntimeError';
  }
}

const HYBRID_RE = /hybrid mode not supported/i;

/**
 * The clear error for a runtime that refuses this host's cgroup layout (crun
 * 1.8 on a v1/v2 hybrid host), or undefined when `message` is something else.
 */
export function explainRuntimeFailure(runtime: string, runtimePath: string, message: string): BerthError | undefined {
  if (HYBRID_RE.test(message)) {
    return failedPrecondition(
      `runtime "${runtime}" (${runtimePath}) cannot run containers on this host: it does not support the hybrid ` +
        `cgroup v1/v2 layout this host uses (cgroup v1 controllers with a cgroup2 mount at /sys/fs/cgroup/unified ` +
        `that has controllers enabled). The runtime said: "${message.trim()}". Use runc (the default runtime) or ` +
        `boot the host with a unified cgroup v2 hierarchy`,
    );
  }
  return undefined;
}

/** The host's cgroup layout: v2 (unified), v1 (legacy), or hybrid (v1 plus a cgroup2 mount with controllers). */
export function cgroupMode(): 'v1' | 'v2' | 'hybrid' {
  try {
    if (fs.existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'v2';
    const uni = '/sys/fs/cgroup/unified/cgroup.controllers';
    if (fs.existsSync(uni) && fs.readFileSync(uni, 'utf8').trim() !== '') return 'hybrid';
  } catch {
    // fall through
  }
  return 'v1';
}

/** Parses a signal given as a number, "9", "KILL" or "SIGKILL". */
export function parseSignal(sig: string | number): number {
  if (typeof sig === 'number') {
    if (!Number.isInteger(sig) || sig <= 0 || sig > 64) throw invalidArgument(`invalid signal: ${sig}`);
    return sig;
  }
  const s = sig.trim().toUpperCase();
  if (/^\d+$/.test(s)) return parseSignal(Number(s));
  const name = (s.startsWith('SIG') ? s : `SIG${s}`) as keyof typeof os.constants.signals;
  const n = os.constants.signals[name];
  if (n === undefined) {
    const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(s.startsWith('SIG') ? s : `SIG${s}`);
    if (rt) return 34 + Number(rt[1] ?? 0);
    throw invalidArgument(`invalid signal: ${sig}`);
  }
  return n;
}

export interface ProcessInfo {
  pids: number[];
}

export class OciRuntime {
  readonly name: string;
  readonly path: string;
  readonly root: string;
  private readonly globalArgs: string[];

  constructor(opts: OciRuntimeOptions) {
    this.name = opts.name;
    this.path = opts.path;
    this.root = opts.root;
    this.globalArgs = [
      '--root',
      opts.root,
      ...(opts.systemdCgroup ? ['--systemd-cgroup'] : []),
      ...(opts.runtimeArgs ?? []),
    ];
    fs.mkdirSync(opts.root, { recursive: true, mode: 0o700 });
  }

  /** Arguments that go before every subcommand (the shim is given these too). */
  get args(): string[] {
    return [...this.globalArgs];
  }

  /** Runs the runtime; rejects with RuntimeError (or the clear hybrid-cgroup error). */
  run(args: string[], opts: { input?: string | Buffer; timeoutMs?: number } = {}): Promise<string> {
    const full = [...this.globalArgs, ...args];
    return new Promise((resolve, reject) => {
      const child = execFile(
        this.path,
        full,
        { maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 60_000, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (!err) return resolve(stdout);
          const msg = lastError(stderr || stdout || (err as Error).message);
          const clear = explainRuntimeFailure(this.name, this.path, msg);
          if (clear) return reject(clear);
          if ((err as NodeJS.ErrnoException).code === 'ENOENT')
            return reject(failedPrecondition(`runtime "${this.name}": executable ${this.path} not found`));
          const kind = /does not exist|not found|no such container/i.test(msg) ? 'not-found' : 'internal';
          reject(new RuntimeError(this.name, args, msg, kind));
        },
      );
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      else child.stdin?.end();
    });
  }

  /** `--version` output; throws when the executable is missing. */
  async version(): Promise<string> {
    return (await this.run(['--version'])).trim();
  }

  /**
   * Checks that the runtime can run containers here. crun 1.8 refuses hybrid
   * cgroup hosts: say so before the first container fails obscurely.
   */
  async probe(): Promise<{ version: string }> {
    const version = await this.version();
    // crun (1.8 here) refuses hybrid hosts at create; newer releases are tried for real by callers that want to
    if (/^crun version 1\./m.test(version) && cgroupMode() === 'hybrid') {
      throw explainRuntimeFailure(this.name, this.path, 'cgroups in hybrid mode not supported')!;
    }
    return { version };
  }

  async start(id: string): Promise<void> {
    await this.run(['start', id]);
  }

  async kill(id: string, signal: string | number, opts: { all?: boolean } = {}): Promise<void> {
    await this.run(['kill', ...(opts.all ? ['--all'] : []), id, String(parseSignal(signal))]);
  }

  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    try {
      await this.run(['delete', ...(opts.force ? ['--force'] : []), id]);
    } catch (err) {
      if (err instanceof RuntimeError && err.kind === 'not-found') return;
      throw err;
    }
  }

  /** The runtime's state, or null when it knows no such container. */
  async state(id: string): Promise<OciState | null> {
    try {
      return JSON.parse(await this.run(['state', id])) as OciState;
    } catch (err) {
      if (err instanceof RuntimeError && err.kind === 'not-found') return null;
      throw err;
    }
  }

  async list(): Promise<OciState[]> {
    const out = (await this.run(['list', '--format', 'json'])).trim();
    return out === '' || out === 'null' ? [] : (JSON.parse(out) as OciState[]);
  }

  async pause(id: string): Promise<void> {
    await this.run(['pause', id]);
  }

  async resume(id: string): Promise<void> {
    await this.run(['resume', id]);
  }

  /** `update --resources -` with an OCI LinuxResources object. */
  async update(id: string, resources: Record<string, unknown>): Promise<void> {
    await this.run(['update', '--resources', '-', id], { input: JSON.stringify(resources) });
  }

  /** Host pids of the container's processes (for `top`: berthd then runs ps itself). */
  async ps(id: string): Promise<number[]> {
    const out = (await this.run(['ps', '--format', 'json', id])).trim();
    const pids = out === '' || out === 'null' ? [] : (JSON.parse(out) as number[]);
    return pids;
  }

  /**
   * Spawns `runtime exec --process <file> [--console-socket S] [-d] id`. The
   * caller owns the child (stdio, wait).
   */
  spawnExec(
    id: string,
    processFile: string,
    opts: { consoleSocket?: string; pidFile?: string; detach?: boolean; stdio: ('pipe' | 'ignore')[] },
  ) {
    const args = [
      ...this.globalArgs,
      'exec',
      '--process',
      processFile,
      ...(opts.consoleSocket ? ['--console-socket', opts.consoleSocket] : []),
      ...(opts.pidFile ? ['--pid-file', opts.pidFile] : []),
      ...(opts.detach ? ['--detach'] : []),
      id,
    ];
    return spawn(this.path, args, { stdio: opts.stdio });
  }
}

/** runc prints `time=… level=error msg="…"` lines or plain text; keep the useful part. */
export function lastError(stderr: string): string {
  const lines = stderr.trim().split('\n').filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i]!;
    const m = /level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"/.exec(l);
    if (m) return m[1]!.replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    if (l.startsWith('{')) {
      try {
        const j = JSON.parse(l) as { level?: string; msg?: string };
        if (j.level === 'error' || j.level === 'fatal') return j.msg ?? l;
      } catch {
        // not JSON
      }
    }
  }
  return lines.join('; ');
}

/** Finds a runtime executable by name in PATH (and /usr/sbin, /sbin) or accepts an absolute path. */
export function resolveRuntimePath(p: string): string {
  if (path.isAbsolute(p)) {
    if (!fs.existsSync(p)) throw notFound(`runtime executable ${p} not found`);
    return p;
  }
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const full = path.join(d, p);
    try {
      fs.accessSync(full, fs.constants.X_OK);
      return full;
    } catch {
      // next
    }
  }
  throw notFound(`runtime executable ${p} not found in PATH`);
}
