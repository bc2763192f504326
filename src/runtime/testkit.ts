// Test helpers for the runtime layer: busybox bundles with a minimal OCI
// config (from `runc spec`), a per-test exec-root, and cleanup of every
// container and shim started (by id / pid), even when a test fails.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { OciRuntime } from './oci-runtime.js';
import { readShimState, ShimClient, type ShimSpawnOptions } from './shim-client.js';

export const RUNC = '/usr/sbin/runc';
export const CRUN = '/usr/bin/crun';
export const BUSYBOX = '/bin/busybox';

let template: Record<string, unknown> | undefined;
function specTemplate(): Record<string, unknown> {
  if (!template) {
    const d = fs.mkdtempSync('/tmp/brt-spec-');
    execFileSync(RUNC, ['spec', '--bundle', d]);
    template = JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
    fs.rmSync(d, { recursive: true, force: true });
  }
  return structuredClone(template);
}

let applets: string[] | undefined;

export interface BundleOptions {
  args: string[];
  tty?: boolean;
  env?: string[];
  /** memory limit in bytes (cgroup) */
  memory?: number;
  cgroupsPath?: string;
}

/** A bundle dir with rootfs/ (busybox + applet symlinks) and config.json. */
export function makeBundle(dir: string, opts: BundleOptions): string {
  const rootfs = path.join(dir, 'rootfs');
  fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
  applets ??= execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) {
    if (a === 'busybox') continue;
    try {
      fs.symlinkSync('busybox', path.join(rootfs, 'bin', a));
    } catch {
      // exists
    }
  }
  const c = specTemplate() as {
    process: { terminal: boolean; args: string[]; env: string[] };
    root: { readonly: boolean };
    linux: { cgroupsPath?: string; resources?: Record<string, unknown> };
  };
  c.process.terminal = !!opts.tty;
  c.process.args = opts.args;
  c.process.env = ['PATH=/bin', 'TERM=xterm', ...(opts.env ?? [])];
  c.root.readonly = false;
  if (opts.cgroupsPath) c.linux.cgroupsPath = opts.cgroupsPath;
  if (opts.memory) {
    c.linux.resources = { ...(c.linux.resources ?? {}), memory: { limit: opts.memory, swap: opts.memory } };
  }
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(c, null, 1));
  return dir;
}

/** One test's world: a short temp root (socket paths must stay < 108 bytes), runc under it, cleanup. */
export class Sandbox {
  readonly root: string;
  readonly runtime: OciRuntime;
  private readonly ids = new Set<string>();
  private readonly clients = new Set<ShimClient>();

  constructor(runtimePath = RUNC, name = 'runc') {
    this.root = fs.mkdtempSync('/tmp/brt-');
    this.runtime = new OciRuntime({ name, path: runtimePath, root: path.join(this.root, `runtime-${name}`) });
    // a test process killed early (timeout, ^C) still removes what it started
    const sync = () => this.cleanupSync();
    process.once('exit', sync);
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        sync();
        process.exit(130);
      });
    }
  }

  /** Synchronous variant of cleanup() for exit handlers. */
  cleanupSync(): void {
    if (!fs.existsSync(this.root)) return;
    for (const id of this.ids) {
      try {
        execFileSync(this.runtime.path, [...this.runtime.args, 'delete', '--force', id], { stdio: 'ignore' });
      } catch {
        // not there
      }
      this.killShim(id);
    }
    this.removeCgroups();
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  private killShim(id: string): void {
    const st = readShimState(this.stateDir(id));
    let shimPid = st?.shimPid;
    if (!shimPid) {
      try {
        shimPid = Number(fs.readFileSync(path.join(this.stateDir(id), 'shim.pid'), 'utf8'));
      } catch {
        shimPid = undefined;
      }
    }
    if (shimPid) {
      try {
        process.kill(shimPid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  private removeCgroups(): void {
    for (const id of this.ids) {
      for (const ctl of ['memory', 'pids', 'cpu', 'cpuacct', 'cpuset', 'blkio', 'devices', 'freezer', 'systemd']) {
        try {
          fs.rmdirSync(`/sys/fs/cgroup/${ctl}/berth-test/${id}`);
        } catch {
          // removed by the runtime
        }
      }
    }
  }

  newId(prefix = 'c'): string {
    const id = `${prefix}${randomBytes(5).toString('hex')}`;
    this.ids.add(id);
    return id;
  }

  stateDir(id: string): string {
    return path.join(this.root, 'containers', id);
  }

  logPath(id: string): string {
    return path.join(this.stateDir(id), `${id}-json.log`);
  }

  bundle(id: string, opts: BundleOptions): string {
    return makeBundle(path.join(this.root, 'bundles', id), { cgroupsPath: `/berth-test/${id}`, ...opts });
  }

  async spawn(id: string, bundle: BundleOptions, opts: Partial<ShimSpawnOptions> = {}): Promise<ShimClient> {
    const b = this.bundle(id, bundle);
    const c = await ShimClient.spawn({
      id,
      bundle: b,
      stateDir: this.stateDir(id),
      runtime: this.runtime,
      tty: bundle.tty,
      log: { driver: 'json-file', path: this.logPath(id), maxSize: -1, maxFile: 1 },
      ...opts,
    });
    this.track(c);
    return c;
  }

  track(c: ShimClient): ShimClient {
    this.clients.add(c);
    return c;
  }

  /** Deletes every container (runtime delete --force), kills every shim by its pid, removes the root. */
  async cleanup(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const id of this.ids) {
      try {
        await this.runtime.delete(id, { force: true });
      } catch {
        // not there
      }
      this.killShim(id);
    }
    this.removeCgroups();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** Polls until fn() is truthy or the timeout passes. */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs = 5000, stepMs = 20): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Collects a readable into a string, up to when `done` matches or the stream ends. */
export function collect(stream: NodeJS.ReadableStream): {
  text: () => string;
  waitFor: (re: RegExp, ms?: number) => Promise<string>;
} {
  let acc = '';
  stream.on('data', (d: Buffer | string) => {
    acc += d.toString();
  });
  return {
    text: () => acc,
    waitFor: (re, ms = 5000) => until(() => (re.test(acc) ? acc : ''), ms),
  };
}

export function rssKb(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) : -1;
}

/** Resolves when a readable has ended (also when it already has). */
export function ended(s: NodeJS.ReadableStream & { readableEnded?: boolean }): Promise<void> {
  if (s.readableEnded) return Promise.resolve();
  return new Promise((r) => s.once('end', () => r()));
}
