// A container's streams (moby daemon/attach.go, logs.go, exec.go): attach
// over a hijacked connection (stdcopy frames from the shim without a TTY, raw
// with one), logs from the json-file or local driver's files, and exec sessions.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { ALL_CAPS, type Container } from '../container/index.js';
import { conflict, invalidArgument, notFound, notImplemented } from '../errors/index.js';
import {
  type AttachSession,
  type ExecSession,
  execProcess,
  fixedTimestamp,
  type LogRecord,
  localLogPath,
  readJsonLog,
  readLocalLog,
  type ShimClient,
} from '../runtime/index.js';
import { getExecUser } from '../runtime/spec/index.js';
import type { ContainersCore } from './containers-core.js';
import { addPendingAttach, setProbeRunner } from './containers-task.js';

function frame(stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** Strips stdcopy headers (a TTY's stream is raw). */
function unframer(out: (b: Buffer) => void): (d: Buffer) => void {
  let pend: Buffer = Buffer.alloc(0);
  return (d) => {
    pend = pend.length ? Buffer.concat([pend, d]) : d;
    let p = 0;
    while (pend.length - p >= 8) {
      const len = pend.readUInt32BE(p + 4);
      if (pend.length - p < 8 + len) break;
      out(pend.subarray(p + 8, p + 8 + len));
      p += 8 + len;
    }
    pend = pend.subarray(p);
  };
}

/** moby term.ToBytes: "ctrl-p,ctrl-q" → [16, 17]. */
export function parseDetachKeys(keys: string): number[] {
  const out: number[] = [];
  for (const k of keys.split(',')) {
    const t = k.trim().toLowerCase();
    if (t.length === 1) out.push(t.charCodeAt(0));
    else if (/^ctrl-[a-z@[\\\]^_]$/.test(t)) {
      const ch = t.charCodeAt(5);
      out.push(ch >= 97 ? ch - 96 : ch - 64);
    } else throw invalidArgument(`Unknown character: '${k}'`);
  }
  return out;
}

export interface AttachOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  stream: boolean;
  logs: boolean;
  detachKeys?: string;
  /** false: raw output even without a TTY (the websocket attach never multiplexes). Default true. */
  multiplex?: boolean;
}

export interface LogsOptions {
  stdout: boolean;
  stderr: boolean;
  follow: boolean;
  since?: bigint;
  until?: bigint;
  tail?: number;
  timestamps: boolean;
  details: boolean;
}

interface ExecRecord {
  ID: string;
  containerId: string;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  config: {
    AttachStdin?: boolean;
    AttachStdout?: boolean;
    AttachStderr?: boolean;
    Tty?: boolean;
    Cmd: string[];
    Env?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Privileged?: boolean;
    DetachKeys?: string;
    ConsoleSize?: [number, number] | null;
  };
  session?: ExecSession;
  started: boolean;
}

export class ContainerIO {
  private readonly execs = new Map<string, ExecRecord>();

  constructor(private readonly core: ContainersCore) {
    setProbeRunner((c, cmd, timeoutMs) => this.probe(c, cmd, timeoutMs));
  }

  // ---- attach ---------------------------------------------------------------

  /** Pipes the container's streams to a hijacked connection until the container's output ends or the client goes. */
  async attach(c: Container, o: AttachOptions, sock: Duplex): Promise<void> {
    const tty = !!c.Config.Tty;
    const raw = tty || o.multiplex === false;
    const logDriver = c.HostConfig.LogConfig?.Type || 'json-file';
    const replay = logDriver === 'local' ? localLogPath(c) : c.LogPath;
    if (o.logs && replay) {
      const read = logDriver === 'local' ? readLocalLog : readJsonLog;
      for await (const batch of read(replay, { stdout: o.stdout, stderr: o.stderr })) {
        for (const r of batch) sock.write(raw ? r.line : frame(r.stream === 'stderr' ? 2 : 1, r.line));
      }
    }
    if (!o.stream) {
      sock.end();
      return;
    }
    const detach = o.stdin && tty ? parseDetachKeys(o.detachKeys || 'ctrl-p,ctrl-q') : [];
    await new Promise<void>((resolve) => {
      let sess: AttachSession | undefined;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        cancelPending();
        sess?.close();
        if (!sock.destroyed) sock.end();
        resolve();
      };
      sock.on('close', finish);
      sock.on('error', finish);
      const connect = async (shim: ShimClient) => {
        if (done) return;
        sess = await shim.attach({ stdin: o.stdin, stdout: o.stdout, stderr: o.stderr, raw: true });
        const write = (b: Buffer) => {
          if (!sock.destroyed && !sock.write(b)) {
            sess!.frames.pause();
            sock.once('drain', () => sess!.frames.resume());
          }
        };
        sess.frames.on('data', raw ? unframer(write) : write);
        sess.frames.on('end', finish);
        if (o.stdin && sess.stdin) {
          const stdin = sess.stdin;
          let matched = 0;
          sock.on('data', (d: Buffer) => {
            if (detach.length) {
              for (const b of d) {
                matched = b === detach[matched] ? matched + 1 : b === detach[0] ? 1 : 0;
                if (matched === detach.length) {
                  finish();
                  return;
                }
              }
            }
            stdin.write(d);
          });
          sock.on('end', () => stdin.end());
        }
      };
      const task = this.core.tasks.get(c.ID);
      let cancelPending = () => {};
      if (task && c.State.Running && !c.State.Restarting) void connect(task.shim).catch(finish);
      else cancelPending = addPendingAttach(this.core, c.ID, (shim) => connect(shim).catch(finish));
      // The exit (and an --rm removal) is reported while the shim may still be
      // flushing output to attachers: a connected session ends with its frames
      // (the shim closes attachers once drained, or goes away at its delete).
      this.core.bus.once(`removed:${c.ID}`, () => {
        if (!sess) finish();
      });
    });
  }

  // ---- logs -----------------------------------------------------------------

  /** GET /containers/{id}/logs: records as bytes (framed unless TTY). */
  logs(c: Container, o: LogsOptions, signal: AbortSignal): { tty: boolean; chunks: AsyncIterable<Buffer> } {
    if (!o.stdout && !o.stderr) throw invalidArgument('Bad parameters: you must choose at least one stream');
    const driver = c.HostConfig.LogConfig?.Type || 'json-file';
    if (driver !== 'json-file' && driver !== 'local')
      throw notImplemented(`configured logging driver does not support reading`);
    const read = driver === 'local' ? readLocalLog : readJsonLog;
    const tty = !!c.Config.Tty;
    const core = this.core;
    const stopped =
      c.State.Running && core.tasks.has(c.ID) ? core.nextExit(c.ID, signal).catch(() => {}) : Promise.resolve();
    const logPath = driver === 'local' ? localLogPath(c) : c.LogPath || c.path(`${c.ID}-json.log`);
    const fmt = (r: LogRecord): Buffer => {
      let prefix = '';
      if (o.timestamps) prefix += `${fixedTimestamp(r.time)} `;
      if (o.details && r.attrs) {
        const kv = Object.entries(r.attrs)
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([k, v]) => `${k}=${v}`)
          .join(',');
        if (kv) prefix += `${kv} `;
      }
      const line = prefix ? Buffer.concat([Buffer.from(prefix), r.line]) : r.line;
      return tty ? line : frame(r.stream === 'stderr' ? 2 : 1, line);
    };
    async function* gen(): AsyncGenerator<Buffer> {
      if (!fs.existsSync(logPath) && !o.follow) return;
      for await (const batch of read(logPath, {
        stdout: o.stdout,
        stderr: o.stderr,
        since: o.since,
        until: o.until,
        tail: o.tail,
        follow: o.follow,
        details: o.details,
        stopped,
        signal,
      })) {
        if (batch.length === 1) yield fmt(batch[0]!);
        else if (batch.length) yield Buffer.concat(batch.map(fmt));
      }
    }
    return { tty, chunks: gen() };
  }

  // ---- exec -----------------------------------------------------------------

  execCreate(c: Container, config: ExecRecord['config']): string {
    if (!c.State.Running || c.State.Restarting || !this.core.tasks.has(c.ID))
      throw conflict(`Container ${c.ID} is not running`);
    if (c.State.Paused) throw conflict(`Container ${c.ID} is paused, unpause the container before exec`);
    if (!config.Cmd?.length) throw invalidArgument('No exec command specified');
    const id = randomBytes(32).toString('hex');
    this.execs.set(id, { ID: id, containerId: c.ID, Running: false, ExitCode: null, Pid: 0, config, started: false });
    this.core.event(c, `exec_create: ${config.Cmd.join(' ')}`, { execID: id });
    return id;
  }

  private exec(id: string): ExecRecord {
    const e = this.execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    return e;
  }

  execIds(containerId: string): string[] {
    return [...this.execs.values()].filter((e) => e.containerId === containerId).map((e) => e.ID);
  }

  /** Throws before any byte when the exec cannot start (the router then hijacks). */
  execCheck(id: string): { tty: boolean; detach?: boolean } {
    const e = this.exec(id);
    if (e.started) throw conflict(`Error: Exec command ${id} has already run`);
    const c = this.core.get(e.containerId);
    if (!this.core.tasks.has(c.ID)) throw conflict(`Container ${c.ID} is not running`);
    if (c.State.Paused) throw conflict(`Container ${c.ID} is paused, unpause the container before exec`);
    return { tty: !!e.config.Tty };
  }

  private async spawnExec(e: ExecRecord, tty: boolean, consoleSize?: [number, number] | null): Promise<ExecSession> {
    const c = this.core.get(e.containerId);
    const task = this.core.tasks.get(c.ID);
    if (!task) throw conflict(`Container ${c.ID} is not running`);
    const base = JSON.parse(fs.readFileSync(path.join(this.core.stateDir(c.ID), 'config.json'), 'utf8')) as {
      process: Record<string, unknown> & { env: string[]; capabilities?: Record<string, string[]> };
    };
    const p = { ...base.process };
    p.args = e.config.Cmd;
    const env = [...base.process.env];
    for (const kv of e.config.Env ?? []) {
      const k = kv.split('=')[0];
      const i = env.findIndex((x) => x.split('=')[0] === k);
      if (i >= 0) env[i] = kv;
      else env.push(kv);
    }
    p.env = env;
    if (e.config.WorkingDir) p.cwd = e.config.WorkingDir;
    if (e.config.User) {
      const u = getExecUser(task.rootfs, e.config.User);
      p.user = { uid: u.uid, gid: u.gid, additionalGids: [u.gid, ...u.sgids] };
      if (u.uid !== 0 && p.capabilities) p.capabilities = { bounding: base.process.capabilities?.bounding ?? [] };
    }
    if (e.config.Privileged) {
      const all = [...ALL_CAPS];
      p.capabilities = { bounding: all, effective: all, permitted: all };
    }
    delete p.consoleSize;
    return execProcess(task.runtime, c.ID, p, {
      tty,
      stdin: !!e.config.AttachStdin,
      consoleSize: consoleSize ?? e.config.ConsoleSize ?? undefined,
      workDir: this.core.stateDir(c.ID),
      shimPath: this.core.d.shimPath,
    });
  }

  /** POST /exec/{id}/start: with `sock` (hijacked) the streams are piped; detached without. */
  async execStart(id: string, opts: { tty?: boolean; consoleSize?: [number, number] | null }, sock?: Duplex) {
    const e = this.exec(id);
    const c = this.core.get(e.containerId);
    e.started = true;
    const tty = opts.tty ?? !!e.config.Tty;
    let s: ExecSession;
    try {
      s = await this.spawnExec(e, tty, opts.consoleSize);
    } catch (err) {
      e.ExitCode = 126;
      if (sock && !sock.destroyed) {
        const msg = Buffer.from(`${(err as Error).message}\r\n`);
        sock.end(tty ? msg : frame(3, msg));
      }
      throw err;
    }
    e.session = s;
    e.Running = true;
    e.Pid = s.pid;
    this.core.event(c, `exec_start: ${e.config.Cmd.join(' ')}`, { execID: id });
    const exited = s.exited.then(
      (code) => code,
      () => 126,
    );
    if (sock) {
      const out = (stream: number) => (d: Buffer) => {
        if (!sock.destroyed) sock.write(tty ? d : frame(stream, d));
      };
      if (e.config.AttachStdout !== false) s.stdout.on('data', out(1));
      else s.stdout.resume();
      if (e.config.AttachStderr !== false) s.stderr.on('data', out(2));
      else s.stderr.resume();
      if (s.stdin) {
        const stdin = s.stdin;
        stdin.on('error', () => {});
        sock.on('data', (d: Buffer) => stdin.write(d));
        sock.on('end', () => stdin.end());
      }
      sock.on('error', () => {});
      sock.on('close', () => {
        if (e.Running) s.kill('SIGKILL');
      });
    } else {
      s.stdout.resume();
      s.stderr.resume();
    }
    const code = await exited;
    await Promise.all([ended(s.stdout), ended(s.stderr)]);
    e.Running = false;
    e.ExitCode = code;
    this.core.event(c, 'exec_die', { execID: id, exitCode: String(code) });
    if (sock && !sock.destroyed) sock.end();
  }

  execResize(id: string, h: number, w: number): void {
    const e = this.exec(id);
    if (!e.session) throw conflict(`Exec ${id} is not running`);
    e.session.resize(h, w);
  }

  execInspect(id: string): Record<string, unknown> {
    const e = this.exec(id);
    const cmd = e.config.Cmd;
    return {
      ID: e.ID,
      Running: e.Running,
      ExitCode: e.ExitCode,
      ProcessConfig: {
        tty: !!e.config.Tty,
        entrypoint: cmd[0],
        arguments: cmd.slice(1),
        privileged: !!e.config.Privileged,
        ...(e.config.User ? { user: e.config.User } : {}),
      },
      OpenStdin: !!e.config.AttachStdin,
      OpenStderr: !!e.config.AttachStderr,
      OpenStdout: !!e.config.AttachStdout,
      CanRemove: false,
      ContainerID: e.containerId,
      DetachKeys: e.config.DetachKeys ?? '',
      Pid: e.Pid,
    };
  }

  /** A health probe: runs `cmd`, returns its exit code and up to 4 KiB of output. */
  private async probe(c: Container, cmd: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    const e: ExecRecord = {
      ID: 'probe',
      containerId: c.ID,
      Running: true,
      ExitCode: null,
      Pid: 0,
      config: { Cmd: cmd },
      started: true,
    };
    const s = await this.spawnExec(e, false);
    let out = '';
    const add = (d: Buffer) => {
      if (out.length < 4096) out += d.toString();
    };
    s.stdout.on('data', add);
    s.stderr.on('data', add);
    const timer = setTimeout(() => s.kill('SIGKILL'), timeoutMs);
    try {
      const code = await s.exited;
      return { exitCode: code, output: out.slice(0, 4096) };
    } catch (err) {
      return { exitCode: -1, output: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }
}

function ended(s: Readable): Promise<void> {
  if (s.readableEnded || s.destroyed) return Promise.resolve();
  return new Promise((r) => {
    s.once('end', () => r());
    s.once('close', () => r());
  });
}
