// berthd's side of the per-container shim (native/berth-shim.c). Protocol:
// src/runtime/shim-protocol.md.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { BerthError, failedPrecondition, internal } from '../errors/index.js';
import type { ShimLogSettings } from './log-config.js';
import { explainRuntimeFailure, type OciRuntime, parseSignal } from './oci-runtime.js';
import { spawnDetachedOutput } from './spawn.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** build/Release/berth-shim at the package root (dist/src/runtime → three levels up). */
export const DEFAULT_SHIM_PATH = path.resolve(here, '..', '..', '..', 'build', 'Release', 'berth-shim');

export interface ShimState {
  status: 'created' | 'running' | 'stopped';
  /** The container's init process, host pid. */
  pid: number;
  shimPid: number;
  /** -1 until stopped; 128+signal when killed by a signal. */
  exitCode: number;
  signal: number;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
}

export interface ExitStatus {
  exitCode: number;
  oomKilled: boolean;
  finishedAt: string;
  signal: number;
}

export interface ShimSpawnOptions {
  id: string;
  bundle: string;
  /** `<exec-root>/containers/<id>`: shim.sock, shim.pid, init.pid, state.json, shim.log. */
  stateDir: string;
  runtime: OciRuntime;
  tty?: boolean;
  /** OpenStdin: the container's stdin is a pipe kept open by the shim. */
  openStdin?: boolean;
  /** StdinOnce: the first attached client's end of stdin closes the container's stdin. */
  stdinOnce?: boolean;
  log: ShimLogSettings;
  shimPath?: string;
  /**
   * Start the container at once (`runtime run --detach`: one runtime process
   * instead of `create` + `start`, ~8 ms less per container with runc). The
   * shim holds the container's output until start(), so clients attached in
   * between see all of it; the container is running when spawn() returns.
   */
  run?: boolean;
}

export interface AttachOptions {
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  /** Deliver the shim's framed stream in `frames` (for the API layer) instead of demultiplexed stdout/stderr. */
  raw?: boolean;
}

/**
 * An attached session. `frames` is the shim's raw stream: 8-byte stdcopy
 * headers ([stream,0,0,0,len BE]) then payload, ready to forward as Docker's
 * multiplexed stream (with a TTY every frame is stream 1: strip headers for
 * the raw stream); only filled with `raw: true`. Otherwise `stdout`/`stderr`
 * carry the demultiplexed payloads. Ends when the container's output ends.
 * Backpressure: a slow reader pauses the connection (the shim buffers up to
 * 4 MiB per client, then drops that client; the container never blocks).
 */
export interface AttachSession {
  frames: Readable;
  stdout: Readable;
  stderr: Readable;
  /** Writes go to the container's stdin; end() sends end-of-stdin (closes it with StdinOnce). */
  stdin: Writable | null;
  /** Detaches (the container keeps running). */
  close(): void;
}

function frame(stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** sun_path holds 108 bytes: longer socket paths are reached through /proc/self/fd/<dir fd>. */
const MAX_SUN_PATH = 107;

function connect(sockPath: string): Promise<net.Socket> {
  if (Buffer.byteLength(sockPath) <= MAX_SUN_PATH) return connectShort(sockPath);
  let fd: number;
  try {
    fd = fs.openSync(path.dirname(sockPath), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (e) {
    return Promise.reject(e);
  }
  return connectShort(`/proc/self/fd/${fd}/${path.basename(sockPath)}`).finally(() => fs.closeSync(fd));
}

function connectShort(sockPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sockPath);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Reads the shim's state.json (written atomically), or null when absent. */
export function readShimState(stateDir: string): ShimState | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(stateDir, 'state.json'), 'utf8')) as ShimState;
  } catch {
    return null;
  }
}

/** Whether a process exists (signal 0). */
function alive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class ShimClient {
  private sock: net.Socket;
  private nextId = 1;
  private readonly pending = new Map<string, { resolve: (v: string) => void; reject: (e: Error) => void }>();
  private buf = '';
  private closed = false;
  /** The container's init (host pid) as the shim reported it at spawn; 0 for a reconnected client. */
  initPid = 0;

  private constructor(
    readonly id: string,
    readonly stateDir: string,
    sock: net.Socket,
    private readonly runtimeName = 'runtime',
  ) {
    this.sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      this.closed = true;
      const err = new BerthError('unavailable', `shim for container ${id} is gone`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
  }

  get socketPath(): string {
    return path.join(this.stateDir, 'shim.sock');
  }

  /**
   * Starts a shim, which creates the container (`runtime create`), and
   * connects to it. The container is then in the created state: call start().
   */
  static async spawn(opts: ShimSpawnOptions): Promise<ShimClient> {
    fs.mkdirSync(opts.stateDir, { recursive: true, mode: 0o711 });
    const args = [
      '--id',
      opts.id,
      '--bundle',
      opts.bundle,
      '--state-dir',
      opts.stateDir,
      '--runtime',
      opts.runtime.path,
    ];
    for (const a of opts.runtime.args) args.push('--runtime-arg', a);
    if (opts.tty) args.push('--tty');
    if (opts.openStdin) args.push('--stdin');
    if (opts.stdinOnce) args.push('--stdin-once');
    if (opts.run) args.push('--run');
    args.push('--log-driver', opts.log.driver);
    if (opts.log.driver === 'json-file' || opts.log.driver === 'local') {
      if (!opts.log.path) throw internal(`${opts.log.driver} log settings without a path`);
      args.push('--log-path', opts.log.path, '--log-max-size', String(opts.log.maxSize));
      args.push('--log-max-file', String(opts.log.maxFile));
      if (opts.log.attrs) args.push('--log-attrs', opts.log.attrs);
      if (opts.log.attrsPb) args.push('--log-attrs-pb', opts.log.attrsPb);
    }
    const shimPath = opts.shimPath ?? DEFAULT_SHIM_PATH;
    if (!fs.existsSync(shimPath)) throw failedPrecondition(`berth-shim not found at ${shimPath}: run npm install`);
    const out = await spawnDetachedOutput(shimPath, args);
    const line = out.split('\n')[0] ?? '';
    if (!line.startsWith('ok ')) {
      const msg = line.startsWith('err ')
        ? line.slice(4)
        : `shim failed to start (${out.trim() || 'no output'}); see ${path.join(opts.stateDir, 'shim.log')}`;
      throw (
        explainRuntimeFailure(opts.runtime.name, opts.runtime.path, msg) ??
        new BerthError('internal', `${opts.runtime.name} ${opts.run ? 'run' : 'create'} ${opts.id}: ${msg}`)
      );
    }
    const sock = await connect(path.join(opts.stateDir, 'shim.sock'));
    const client = new ShimClient(opts.id, opts.stateDir, sock, opts.runtime.name);
    client.initPid = Number(line.slice(3)) || 0;
    return client;
  }

  /**
   * Reconnects to the shim of a container after a berthd restart. Returns the
   * client, or null with the last recorded state when the shim is gone (the
   * container stopped while berthd was away: berthd then runs `runtime delete`).
   */
  static async reconnect(
    id: string,
    stateDir: string,
  ): Promise<{ client: ShimClient | null; state: ShimState | null }> {
    try {
      const sock = await connect(path.join(stateDir, 'shim.sock'));
      return { client: new ShimClient(id, stateDir, sock), state: null };
    } catch {
      const state = readShimState(stateDir);
      if (state && state.status !== 'stopped' && !alive(state.shimPid)) {
        // the shim died without recording an exit: the container state is unknown to it
        return { client: null, state: { ...state, status: 'stopped' } };
      }
      return { client: null, state };
    }
  }

  private onData(d: string): void {
    this.buf += d;
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl < 0) break;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const sp = line.indexOf(' ');
      const reqId = line.slice(0, sp);
      const rest = line.slice(sp + 1);
      const p = this.pending.get(reqId);
      if (!p) continue;
      this.pending.delete(reqId);
      if (rest === 'ok' || rest.startsWith('ok ')) p.resolve(rest.slice(3));
      else p.reject(new BerthError('internal', `container ${this.id}: ${rest.replace(/^err ?/, '')}`));
    }
  }

  /** Sends one request line; resolves with the reply text after "ok". */
  request(cmd: string): Promise<string> {
    if (this.closed) return Promise.reject(new BerthError('unavailable', `shim for container ${this.id} is gone`));
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.sock.write(`${id} ${cmd}\n`);
    });
  }

  async start(): Promise<void> {
    try {
      await this.request('start');
    } catch (err) {
      const msg = (err as Error).message;
      throw explainRuntimeFailure(this.runtimeName, this.runtimeName, msg) ?? err;
    }
  }

  async state(): Promise<ShimState> {
    return JSON.parse(await this.request('state')) as ShimState;
  }

  /** Signals the container's init process (for `--all` use OciRuntime.kill). */
  async kill(signal: string | number = 'SIGTERM'): Promise<void> {
    await this.request(`kill ${parseSignal(signal)}`);
  }

  async resize(rows: number, cols: number): Promise<void> {
    await this.request(`resize ${Math.max(0, Math.floor(rows))} ${Math.max(0, Math.floor(cols))}`);
  }

  async closeStdin(): Promise<void> {
    await this.request('closestdin');
  }

  /** Resolves when the container has exited and its output is drained (logs complete). */
  async wait(): Promise<ExitStatus> {
    const s = JSON.parse(await this.request('wait')) as ShimState;
    return { exitCode: s.exitCode, oomKilled: s.oomKilled, finishedAt: s.finishedAt, signal: s.signal };
  }

  /** `runtime delete` through the shim; the shim exits afterwards. */
  async delete(opts: { force?: boolean } = {}): Promise<void> {
    await this.request(opts.force ? 'delete force' : 'delete');
    this.close();
  }

  /** Asks a shim whose container is stopped (or never started) to exit without `runtime delete`. */
  async shutdown(): Promise<void> {
    await this.request('shutdown');
    this.close();
  }

  /** Attaches on a new connection. */
  async attach(opts: AttachOptions = { stdout: true, stderr: true }): Promise<AttachSession> {
    const sock = await connect(this.socketPath);
    const flags = `${opts.stdin ? 'i' : ''}${opts.stdout ? 'o' : ''}${opts.stderr ? 'e' : ''}` || '-';
    sock.write(`1 attach ${flags}\n`);
    // read the reply line, then the stream of frames
    const first = await new Promise<{ line: string; rest: Buffer }>((resolve, reject) => {
      let acc = Buffer.alloc(0);
      const onData = (d: Buffer) => {
        acc = Buffer.concat([acc, d]);
        const nl = acc.indexOf(10);
        if (nl < 0) return;
        sock.off('data', onData);
        sock.off('error', reject);
        sock.pause();
        resolve({ line: acc.subarray(0, nl).toString('utf8'), rest: acc.subarray(nl + 1) });
      };
      sock.on('data', onData);
      sock.once('error', reject);
      sock.once('close', () =>
        reject(new BerthError('unavailable', `shim for container ${this.id} closed the attach`)),
      );
    });
    if (!first.line.startsWith('1 ok')) {
      sock.destroy();
      throw new BerthError('internal', `attach ${this.id}: ${first.line.replace(/^1 err ?/, '')}`);
    }
    const frames = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let pend: Buffer = Buffer.alloc(0);
    const resumeOnDrain = (s: PassThrough) => {
      sock.pause();
      s.once('drain', () => sock.resume());
    };
    const demux = (d: Buffer) => {
      pend = pend.length ? Buffer.concat([pend, d]) : d;
      let p = 0;
      while (pend.length - p >= 8) {
        const len = pend.readUInt32BE(p + 4);
        if (pend.length - p < 8 + len) break;
        const payload = pend.subarray(p + 8, p + 8 + len);
        const target = pend[p] === 2 ? stderr : stdout;
        if (!target.write(payload)) resumeOnDrain(target);
        p += 8 + len;
      }
      pend = pend.subarray(p);
    };
    const onChunk = (d: Buffer) => {
      if (opts.raw) {
        if (!frames.write(d)) resumeOnDrain(frames);
      } else demux(d);
    };
    if (opts.raw) {
      stdout.end();
      stderr.end();
    } else frames.end();
    if (first.rest.length) onChunk(first.rest);
    sock.on('data', onChunk);
    sock.on('error', () => {});
    sock.on('close', () => {
      for (const s of [frames, stdout, stderr]) if (!s.writableEnded) s.end();
    });
    sock.resume();
    let stdin: Writable | null = null;
    if (opts.stdin) {
      stdin = new Writable({
        write(chunk: Buffer, _enc, cb) {
          // frames of at most 4 KiB payload (the shim's bound)
          for (let o = 0; o < chunk.length; o += 4096) sock.write(frame(0, chunk.subarray(o, o + 4096)));
          cb();
        },
        final(cb) {
          sock.write(frame(0, Buffer.alloc(0)));
          cb();
        },
      });
    }
    return {
      frames,
      stdout,
      stderr,
      stdin,
      close: () => sock.destroy(),
    };
  }

  /** Drops the control connection (what happens when berthd exits). */
  close(): void {
    this.closed = true;
    this.sock.destroy();
  }
}
