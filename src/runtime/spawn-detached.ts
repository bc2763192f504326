// Starting the per-container shim without fork(): libuv's spawn forks the
// daemon, and on this kind of machine fork() of a 100-150 MB Node process
// costs ~10 ms of the event loop's time (page tables), per container start.
// native.spawnDetached uses posix_spawn (vfork semantics), whose cost does not
// grow with the daemon's size. See native/berth_native.c.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { native } from '../native/index.js';

/**
 * Runs `file args…` in a new session (stdin and stderr /dev/null) and resolves
 * with everything it wrote on stdout once stdout is closed; the process itself
 * is reaped in the background (a daemonising program exits right away).
 */
export async function spawnDetachedOutput(file: string, args: string[]): Promise<string> {
  const { pid, stdout } = await native.spawnDetached(file, [file, ...args], true);
  let out = '';
  try {
    const s = new net.Socket({ fd: stdout, readable: true, writable: false });
    s.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      s.on('data', (d: string) => {
        out += d;
      });
      s.once('end', () => resolve());
      s.once('error', reject);
    });
    s.destroy();
  } finally {
    void reap(pid);
  }
  return out;
}

/** Collects the exit status of a child Node does not know about (bounded: ~10 s). */
async function reap(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if (native.waitpid(pid, true)) return;
    } catch {
      return; // ECHILD: already reaped
    }
    await sleep(i < 20 ? 5 : 50, undefined, { ref: false });
  }
}
