// One daemon per data-root: a pidfile that refuses a second live process.
import fs from 'node:fs';
import { conflict } from '../errors/index.js';
import { atomicWriteFileSync } from './atomic.js';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes our pid to `pidfile`, refusing if another live process holds it. */
export function acquirePidfile(pidfile: string): () => void {
  try {
    const other = Number.parseInt(fs.readFileSync(pidfile, 'utf8').trim(), 10);
    if (Number.isInteger(other) && other > 0 && other !== process.pid && processAlive(other)) {
      // Same wording as dockerd so scripts that look for it keep working.
      throw conflict(`pid file found, ensure docker is not running or delete ${pidfile}`);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  atomicWriteFileSync(pidfile, `${process.pid}`);
  return () => {
    try {
      if (fs.readFileSync(pidfile, 'utf8').trim() === `${process.pid}`) fs.rmSync(pidfile, { force: true });
    } catch {
      // already gone
    }
  };
}
