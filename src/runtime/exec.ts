// Exec sessions: `runtime exec --detach --process p.json` run by a berth-shim
// helper (`berth-shim exec`) that berthd spawns itself. The helper is a child
// subreaper, so it reaps the exec'd process and reports its exit code; with a
// TTY it receives the pty master over the console socket and relays it. Exec
// sessions end with berthd (the helper kills the process when berthd goes).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { BerthError } from '../errors/index.js';
import { explainRuntimeFailure, type OciRuntime, parseSignal } from './oci-runtime.js';
import { DEFAULT_SHIM_PATH } from './shim-client.js';
import { type NativeChild, spawnNative } from './spawn.js';

export interface ExecOptions {
  tty?: boolean;
  /** Give the process a stdin (else /dev/null). */
  stdin?: boolean;
  /** Initial [rows, cols] for a TTY. */
  consoleSize?: [number, number];
  /** Where process.json and the console socket go: usually `<exec-root>/containers/<id>`. */
  workDir: string;
  shimPath?: string;
}

export interface ExecSession {
  /** Host pid of the exec'd process. */
  pid: number;
  stdin: Writable | null;
  /** The process's output (with a TTY: the terminal's output). */
  stdout: Readable;
  /** Empty with a TTY. */
  stderr: Readable;
  resize(rows: number, cols: number): void;
  kill(signal?: string | number): void;
  /** The exit code (128+signal when killed). */
  exited: Promise<number>;
}

/**
 * Starts an exec session in a running container. `processSpec` is an OCI
 * Process object (args, env, cwd, user, terminal, capabilities, …); its
 * `terminal` is forced to match `opts.tty`. Rejects with the runtime's error
 * when the process could not be started.
 */
export async function execProcess(
  runtime: OciRuntime,
  containerId: string,
  processSpec: Record<string, unknown>,
  opts: ExecOptions,
): Promise<ExecSession> {
  const tag = randomBytes(6).toString('hex');
  fs.mkdirSync(opts.workDir, { recursive: true });
  const procFile = path.join(opts.workDir, `exec-${tag}.json`);
  const pidFile = path.join(opts.workDir, `exec-${tag}.pid`);
  const sockFile = path.join(opts.workDir, `x${tag}.sock`);
  const spec: Record<string, unknown> = { ...processSpec, terminal: !!opts.tty };
  if (opts.tty && opts.consoleSize) spec.consoleSize = { height: opts.consoleSize[0], width: opts.consoleSize[1] };
  fs.writeFileSync(procFile, JSON.stringify(spec));
  const args = ['exec', '--id', containerId, '--process', procFile, '--pid-file', pidFile, '--runtime', runtime.path];
  for (const a of runtime.args) args.push('--runtime-arg', a);
  if (opts.tty) args.push('--tty', '--console-socket', sockFile);
  let child: NativeChild;
  try {
    child = await spawnNative(opts.shimPath ?? DEFAULT_SHIM_PATH, args, [
      opts.stdin ? 'pipe' : 'ignore',
      'pipe',
      opts.tty ? 'ignore' : 'pipe',
      'pipe',
    ]);
  } catch (e) {
    fs.rmSync(procFile, { force: true });
    throw e;
  }
  const [childStdin, childStdout, childStderr, ctl] = child.stdio;
  if (!ctl || !childStdout) throw new BerthError('internal', 'exec helper without its pipes');
  ctl.setEncoding('utf8');
  let ctlBuf = '';
  let startedResolve!: (pid: number) => void;
  let startedReject!: (e: Error) => void;
  const started = new Promise<number>((res, rej) => {
    startedResolve = res;
    startedReject = rej;
  });
  let exitResolve!: (code: number) => void;
  let exitReject!: (e: Error) => void;
  const exited = new Promise<number>((res, rej) => {
    exitResolve = res;
    exitReject = rej;
  });
  exited.catch(() => {});
  let gotExit = false;
  ctl.on('data', (d: string) => {
    ctlBuf += d;
    for (let nl = ctlBuf.indexOf('\n'); nl >= 0; nl = ctlBuf.indexOf('\n')) {
      const line = ctlBuf.slice(0, nl);
      ctlBuf = ctlBuf.slice(nl + 1);
      if (line.startsWith('started ')) startedResolve(Number(line.slice(8)));
      else if (line.startsWith('exit ')) {
        gotExit = true;
        exitResolve(Number(line.slice(5)));
      } else if (line.startsWith('error ')) {
        const msg = line.slice(6);
        const err =
          explainRuntimeFailure(runtime.name, runtime.path, msg) ??
          new BerthError(
            /not found|no such file/i.test(msg) ? 'not-found' : 'internal',
            `OCI runtime exec failed: ${msg}`,
          );
        startedReject(err);
        exitReject(err);
      }
    }
  });
  ctl.on('error', () => {});
  // fd 3 is the helper's alone: its close is the helper's end (after all it wrote there was read)
  ctl.once('close', () => {
    const err = new BerthError('internal', `exec helper for ${containerId} exited unexpectedly`);
    startedReject(err);
    if (!gotExit) exitReject(err);
  });
  void child.exited; // reaped in the background
  const cleanup = () => {
    for (const f of [procFile, pidFile, sockFile]) fs.rmSync(f, { force: true });
  };
  exited.then(cleanup, cleanup);
  let pid: number;
  try {
    pid = await started;
  } catch (err) {
    cleanup();
    throw err;
  }
  const stderr = childStderr ?? new PassThrough().end();
  return {
    pid,
    stdin: childStdin ?? null,
    stdout: childStdout,
    stderr: stderr as Readable,
    resize(rows: number, cols: number) {
      ctl.write(`resize ${Math.floor(rows)} ${Math.floor(cols)}\n`);
    },
    kill(signal: string | number = 'SIGKILL') {
      ctl.write(`kill ${parseSignal(signal)}\n`);
    },
    exited,
  };
}
