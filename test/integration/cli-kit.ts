// Shared by the cli-*.test.ts files: start berthd on a private data-root and
// socket (never the defaults), run the docker CLIs against it, stop it by PID.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { unmountUnder } from '../kit/reference-dockerd.js';

export const BERTHD = path.resolve('dist/src/cmd/berthd.js');
export const BERTH = path.resolve('dist/src/cmd/berth.js');
export const CLI28 = '/usr/local/bin/docker';
export const CLI20 = '/usr/bin/docker';

export function cliUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'berthd tests need root (overlay mounts, socket ownership)';
  for (const b of [CLI28, CLI20]) if (!fs.existsSync(b)) return `${b} is missing`;
  if (!fs.existsSync(BERTHD)) return 'berthd is not built (npx tsc -p .)';
  return undefined;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(
  bin: string,
  args: string[],
  opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult & { raw: Buffer }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
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
      const raw = Buffer.concat(out);
      resolve({ code: code ?? -1, stdout: raw.toString(), stderr: err, raw });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

export class Berthd {
  private exited = false;
  readonly exit: Promise<number | null>;
  private constructor(
    readonly dir: string,
    readonly dataRoot: string,
    readonly socket: string,
    readonly pidfile: string,
    readonly logFile: string,
    readonly child: ChildProcess,
  ) {
    this.exit = new Promise((resolve) => {
      child.once('exit', (code) => {
        this.exited = true;
        resolve(code);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }
  get host(): string {
    return `unix://${this.socket}`;
  }
  get hasExited(): boolean {
    return this.exited;
  }

  /** Starts berthd with a fresh temp dir (or `dir`); extra args after the private roots. */
  static async start(
    opts: {
      dir?: string;
      args?: string[];
      env?: NodeJS.ProcessEnv;
      configFile?: string;
      stdio?: (number | 'ignore')[];
      wait?: boolean;
    } = {},
  ): Promise<Berthd> {
    const dir = opts.dir ?? (await fsp.mkdtemp(path.join(os.tmpdir(), 'berthd-test-')));
    await fsp.mkdir(dir, { recursive: true });
    const dataRoot = path.join(dir, 'root');
    const socket = path.join(dir, 'berth.sock');
    const pidfile = path.join(dir, 'berthd.pid');
    const logFile = path.join(dir, 'berthd.log');
    const cfg = opts.configFile ?? path.join(dir, 'daemon.json');
    if (!opts.configFile && !fs.existsSync(cfg)) fs.writeFileSync(cfg, '{}');
    const args = [
      BERTHD,
      '--data-root',
      dataRoot,
      '--exec-root',
      path.join(dir, 'exec'),
      '--pidfile',
      pidfile,
      '--config-file',
      cfg,
      ...(opts.args ?? ['-H', `unix://${socket}`]),
    ];
    const log = fs.openSync(logFile, 'a');
    const stdio = ['ignore', log, log, ...(opts.stdio ?? [])] as ('ignore' | number)[];
    const child = spawn(process.execPath, args, { stdio, env: { ...process.env, ...opts.env } });
    fs.closeSync(log);
    const b = new Berthd(dir, dataRoot, socket, pidfile, logFile, child);
    if (opts.wait !== false) await b.waitReady();
    return b;
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exited) throw new Error(`berthd exited during start-up:\n${this.log()}`);
      if (this.log().includes('Daemon has completed initialization')) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`berthd did not start within ${timeoutMs} ms:\n${this.log()}`);
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  docker(cli: string, args: string[], opts: { input?: Buffer | string; timeoutMs?: number } = {}) {
    return run(cli, ['-H', this.host, ...args], {
      ...opts,
      env: { DOCKER_CONFIG: path.join(this.dir, 'cli-config') },
    });
  }

  /** A raw HTTP request on the socket. */
  request(
    method: string,
    urlPath: string,
    body?: string,
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return httpUnix(this.socket, method, urlPath, body);
  }

  async stop(sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> {
    if (!this.exited) {
      try {
        process.kill(this.pid, sig);
      } catch {
        // gone
      }
      const t = setTimeout(() => {
        if (!this.exited) process.kill(this.pid, 'SIGKILL');
      }, timeoutMs);
      const code = await this.exit;
      clearTimeout(t);
      return code;
    }
    return this.exit;
  }

  async destroy(): Promise<void> {
    await this.stop();
    unmountUnder([this.dir]);
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}

export function httpUnix(
  socketPath: string,
  method: string,
  urlPath: string,
  body?: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: urlPath, timeout: 30_000 }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => {
        b += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b }));
    });
    req.on('error', reject);
    if (body !== undefined) {
      req.setHeader('Content-Type', 'application/json');
      req.end(body);
    } else req.end();
  });
}
