// A reference moby dockerd (Debian docker.io 20.10) for differential tests.
//
// Each instance runs in its own network and mount namespace
// (`unshare --net --mount --propagation private`) with a private tmpfs over
// /run, so it can neither touch a host docker0 / iptables nor find another
// engineer's containerd socket at /run/containerd. All of its roots
// (data-root, exec-root, pidfile, socket) live under one private directory.
// It is stopped by its own PID only (SIGTERM, then SIGKILL after a timeout).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

export const DOCKERD = '/usr/sbin/dockerd';
export const DOCKER_CLI = '/usr/bin/docker';

/** Why the reference dockerd cannot run here, or undefined when it can. */
export function referenceDockerdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'reference dockerd needs root';
  for (const bin of [DOCKERD, DOCKER_CLI, '/usr/bin/unshare', '/usr/bin/containerd', '/usr/sbin/runc']) {
    if (!fs.existsSync(bin)) return `${bin} is missing`;
  }
  if (!fs.readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return 'kernel has no overlay filesystem';
  return undefined;
}

export interface DockerResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export interface StartOptions {
  /** Use this data-root (e.g. one berth wrote) instead of a fresh one. */
  dataRoot?: string;
  /** Parent directory for the instance's private files (default os.tmpdir()). */
  baseDir?: string;
  /** How long to wait for `_ping` (default 60 s). */
  startTimeoutMs?: number;
  /** Extra dockerd flags (e.g. --registry-mirror, --insecure-registry). */
  extraArgs?: string[];
}

export class ReferenceDockerd {
  private exited = false;
  private exitPromise: Promise<void>;

  private constructor(
    readonly dir: string,
    readonly dataRoot: string,
    readonly execRoot: string,
    readonly socket: string,
    readonly logFile: string,
    private readonly child: ChildProcess,
  ) {
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', () => {
        this.exited = true;
        resolve();
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get host(): string {
    return `unix://${this.socket}`;
  }

  static async start(opts: StartOptions = {}): Promise<ReferenceDockerd> {
    const why = referenceDockerdUnavailable();
    if (why) throw new Error(why);
    const dir = await fsp.mkdtemp(path.join(opts.baseDir ?? os.tmpdir(), 'refdockerd-'));
    const dataRoot = opts.dataRoot ?? path.join(dir, 'data');
    const execRoot = path.join(dir, 'exec');
    const socket = path.join(dir, 'docker.sock');
    const logFile = path.join(dir, 'dockerd.log');
    await fsp.mkdir(dataRoot, { recursive: true });
    await fsp.mkdir(execRoot, { recursive: true });
    const args = [
      '--net',
      '--mount',
      '--propagation',
      'private',
      '--',
      '/bin/sh',
      '-c',
      // a private /run: no shared /run/containerd, /run/docker.pid, …
      'mount -t tmpfs -o mode=755 berth-refdockerd-run /run && exec "$@"',
      'sh',
      DOCKERD,
      '--data-root',
      dataRoot,
      '--exec-root',
      execRoot,
      '--pidfile',
      path.join(dir, 'docker.pid'),
      '-H',
      `unix://${socket}`,
      '--bridge=none',
      '--iptables=false',
      '--ip-masq=false',
      '--ip-forward=false',
      '--storage-driver',
      'overlay2',
      '--log-level',
      'info',
      ...(opts.extraArgs ?? []),
    ];
    const log = fs.openSync(logFile, 'a');
    const child = spawn('/usr/bin/unshare', args, { stdio: ['ignore', log, log], detached: false });
    fs.closeSync(log);
    const d = new ReferenceDockerd(dir, dataRoot, execRoot, socket, logFile, child);
    try {
      await d.waitReady(opts.startTimeoutMs ?? 60_000);
    } catch (e) {
      await d.stop();
      throw e;
    }
    return d;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exited) {
        throw new Error(`reference dockerd exited during start-up; log:\n${await this.logTail()}`);
      }
      if (await this.ping()) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`reference dockerd did not answer _ping within ${timeoutMs} ms; log:\n${await this.logTail()}`);
  }

  ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = http.get({ socketPath: this.socket, path: '/_ping', timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => {
        req.destroy();
        resolve(false);
      });
    });
  }

  async logTail(lines = 40): Promise<string> {
    try {
      return (await fsp.readFile(this.logFile, 'utf8')).split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /**
   * Starts a process inside this daemon's network namespace (`nsenter -t <pid> -n`), e.g. a registry
   * the daemon must reach on its own loopback. The caller stops it by its PID (nsenter execs it).
   */
  spawnInNetns(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
    return spawn('/usr/bin/nsenter', ['-t', String(this.pid), '-n', '--', cmd, ...args], {
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** Runs a command to completion inside this daemon's network namespace. */
  runInNetns(cmd: string, args: string[]): { code: number; stdout: string; stderr: string } {
    const r = spawnSync('/usr/bin/nsenter', ['-t', String(this.pid), '-n', '--', cmd, ...args], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Runs the 20.10 docker CLI against this daemon. */
  docker(
    args: string[],
    opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
  ): Promise<DockerResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(DOCKER_CLI, ['-H', this.host, ...args], {
        env: { ...process.env, DOCKER_CONFIG: path.join(this.dir, 'cli-config'), ...opts.env },
        cwd: opts.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      let err = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => {
        err += c.toString();
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err });
      });
      child.stdin.end(opts.input ?? '');
    });
  }

  /** docker(...) that throws on a non-zero exit and returns stdout as text. */
  async dockerOk(args: string[], opts: Parameters<ReferenceDockerd['docker']>[1] = {}): Promise<string> {
    const r = await this.docker(args, opts);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout.toString();
  }

  /**
   * Stops the daemon: SIGTERM to its PID, SIGKILL after `timeoutMs`, then
   * unmounts anything still mounted under its roots (in the host namespace;
   * the private mount namespace dies with its processes).
   */
  async stop(timeoutMs = 20_000): Promise<void> {
    if (!this.exited) {
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const killed = await Promise.race([
        this.exitPromise.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs)),
      ]);
      if (killed && !this.exited) {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        await this.exitPromise;
      }
    }
    unmountUnder([this.dir, this.dataRoot]);
  }

  /** Stops the daemon and removes its private directory (not an external data-root). */
  async destroy(): Promise<void> {
    await this.stop();
    unmountUnder([this.dir, this.dataRoot]);
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}

/** Unmounts (lazily, deepest first) every mount point under the given roots. */
export function unmountUnder(roots: string[]): void {
  let info: string;
  try {
    info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return;
  }
  const points = info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => roots.some((r) => p === r || p.startsWith(`${r}/`)))
    .sort((a, b) => b.length - a.length);
  for (const p of points) spawnSync('umount', ['-l', p], { stdio: 'ignore' });
}
