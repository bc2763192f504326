// Child processes of berthd without fork(): libuv's spawn forks the daemon,
// and on this kind of machine fork() of a 100-150 MB Node process costs
// ~10 ms of the event loop's time (page tables), for every container start and
// exec. native.spawn uses posix_spawn (vfork semantics) on the thread pool,
// whose cost does not grow with the daemon's size. See native/berth_native.c.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { native } from '../native/index.js';

export interface NativeChild {
  pid: number;
  /** Per child fd: our end of its socket pair ('pipe'), or null ('ignore': /dev/null). */
  stdio: Array<net.Socket | null>;
  /** Resolves once the child has exited and been reaped (its pipes may still hold unread data). */
  exited: Promise<{ code: number; signal: number }>;
}

/**
 * Spawns `file args…` with the given stdio (fd 0, 1, 2, and more: 'pipe' is a
 * socket pair as child_process's 'pipe', 'ignore' is /dev/null), in a new
 * session when `setsid`. Rejects when the program cannot be started.
 */
export async function spawnNative(
  file: string,
  args: string[],
  stdio: Array<'pipe' | 'ignore'>,
  opts: { setsid?: boolean } = {},
): Promise<NativeChild> {
  const { pid, fds } = await native.spawn(
    file,
    [file, ...args],
    stdio.map((s) => (s === 'pipe' ? 1 : 0)),
    !!opts.setsid,
  );
  const sockets = fds.map((fd) =>
    fd >= 0 ? new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true }) : null,
  );
  // Node does not reap this child: poll for its status, at a growing interval
  // (5 ms, doubling, at most every 250 ms: one waitpid call each).
  return { pid, stdio: sockets, exited: reap(pid) };
}

async function reap(pid: number): Promise<{ code: number; signal: number }> {
  for (let i = 0; ; i++) {
    let st: { code: number; signal: number } | null;
    try {
      st = native.waitpid(pid, true);
    } catch {
      return { code: -1, signal: 0 }; // ECHILD: reaped elsewhere
    }
    if (st) return st;
    await sleep(Math.min(5 * 2 ** Math.min(i, 6), 250), undefined, { ref: false });
  }
}

/**
 * Runs `file args…` in a new session (stdin and stderr /dev/null) and resolves
 * with everything it wrote on stdout once stdout is closed; the process itself
 * is reaped in the background (a daemonising program exits right away).
 */
export async function spawnDetachedOutput(file: string, args: string[]): Promise<string> {
  const child = await spawnNative(file, args, ['ignore', 'pipe', 'ignore'], { setsid: true });
  const s = child.stdio[1]!;
  let out = '';
  s.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    s.on('data', (d: string) => {
      out += d;
    });
    s.once('end', () => resolve());
    s.once('error', reject);
  });
  s.destroy();
  void child.exited;
  return out;
}
