import { spawnSync } from 'node:child_process';

export function timeSync(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

export async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status})`);
}

/** Flush dirty pages so one run's writeback does not land in the next run's time. */
export function settle(): void {
  sh('sync', []);
}

export function machineNote(): string {
  const os = spawnSync('sh', ['-c', 'nproc; free -g | awk "/Mem:/{print \\$2}"; uname -r; findmnt -no FSTYPE /'], {
    encoding: 'utf8',
  }).stdout.split('\n');
  return `${os[0]} cores, ${os[1]} GiB RAM, kernel ${os[2]}, ${os[3]} root fs, Node ${process.version}`;
}
