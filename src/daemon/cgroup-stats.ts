// A container's resource usage from its cgroup, cgroup v1 (one hierarchy per
// controller) or v2 (the unified hierarchy), as the parts of Docker's stats
// JSON (moby types.StatsJSON) that come from cgroups. The conversion follows
// moby daemon/stats_unix.go (statsV1 / statsV2).
//
// cgroup v2 file formats, from the kernel's interface documentation
// (Documentation/admin-guide/cgroup-v2.rst, "Interface Files" / "Format"):
//   memory.current   single value, bytes
//   memory.max       single value, bytes or "max"
//   memory.stat      flat keyed: "<key> <value>" per line (anon, file, kernel_stack,
//                    slab, sock, shmem, file_mapped, ..., inactive_file, ...,
//                    pgfault, pgmajfault, ...), byte counts unless an event count
//   memory.events    flat keyed: low, high, max, oom, oom_kill (and oom_group_kill)
//   cpu.stat         flat keyed: usage_usec, user_usec, system_usec, and with the
//                    cpu controller nr_periods, nr_throttled, throttled_usec
//                    (newer kernels add nr_bursts, burst_usec)
//   io.stat          nested keyed: "<major>:<minor> rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N"
//   pids.current     single value
//   pids.max         single value or "max"
import fs from 'node:fs';
import path from 'node:path';

export interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

/** moby types.BlkioStats: cgroups give berth at most the two byte/op lists; the others are always null. */
export interface BlkioStats {
  io_service_bytes_recursive: BlkioEntry[] | null;
  io_serviced_recursive: BlkioEntry[] | null;
  io_queue_recursive: null;
  io_service_time_recursive: null;
  io_wait_time_recursive: null;
  io_merged_recursive: null;
  io_time_recursive: null;
  sectors_recursive: null;
}

/** A BlkioStats in moby's field order (the order of the stats JSON). */
export function blkioStats(serviceBytes: BlkioEntry[] | null = null, serviced: BlkioEntry[] | null = null): BlkioStats {
  return {
    io_service_bytes_recursive: serviceBytes,
    io_serviced_recursive: serviced,
    io_queue_recursive: null,
    io_service_time_recursive: null,
    io_wait_time_recursive: null,
    io_merged_recursive: null,
    io_time_recursive: null,
    sectors_recursive: null,
  };
}

/** The cgroup-derived parts of a stats sample. */
export interface CgroupStats {
  pids_stats: { current?: number; limit?: number };
  blkio_stats: BlkioStats;
  cpu_usage: {
    total_usage: number;
    percpu_usage?: number[];
    usage_in_kernelmode: number;
    usage_in_usermode: number;
  };
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
  memory_stats: {
    usage?: number;
    max_usage?: number;
    stats?: Record<string, number>;
    failcnt?: number;
    limit?: number;
  };
}

const num = (s: string | undefined) => (s === undefined ? 0 : Number(s.trim()) || 0);

/** "key value" lines (flat keyed files). */
export function parseFlatKeyed(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of (text ?? '').split('\n')) {
    const [k, v] = l.trim().split(/\s+/);
    if (k && v !== undefined && /^-?\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** io.stat: "MAJ:MIN k=v k=v …" per device (nested keyed). */
export function parseIoStat(
  text: string | undefined,
): Array<{ major: number; minor: number; v: Record<string, number> }> {
  const out: Array<{ major: number; minor: number; v: Record<string, number> }> = [];
  for (const l of (text ?? '').split('\n')) {
    const [dev, ...kvs] = l.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    const v: Record<string, number> = {};
    for (const kv of kvs) {
      const i = kv.indexOf('=');
      if (i > 0) v[kv.slice(0, i)] = Number(kv.slice(i + 1)) || 0;
    }
    out.push({ major: Number(m[1]), minor: Number(m[2]), v });
  }
  return out;
}

/** The memory.stat keys moby's statsV2 reports (its Stats map). */
const V2_MEMORY_KEYS = [
  'anon',
  'file',
  'kernel_stack',
  'slab',
  'sock',
  'shmem',
  'file_mapped',
  'file_dirty',
  'file_writeback',
  'anon_thp',
  'inactive_anon',
  'active_anon',
  'inactive_file',
  'active_file',
  'unevictable',
  'slab_reclaimable',
  'slab_unreclaimable',
  'pgfault',
  'pgmajfault',
  'workingset_refault',
  'workingset_activate',
  'workingset_nodereclaim',
  'pgrefill',
  'pgscan',
  'pgsteal',
  'pgactivate',
  'pgdeactivate',
  'pglazyfree',
  'pglazyfreed',
  'thp_fault_alloc',
  'thp_collapse_alloc',
];

/**
 * cgroup v2: `dir` is the container's cgroup directory in the unified
 * hierarchy (e.g. /sys/fs/cgroup/berth/<id>). `hostMemory` caps the memory
 * limit (moby: a limit above the machine's memory is the machine's memory).
 */
export function statsV2(dir: string, hostMemory: number): CgroupStats {
  const rd = (file: string): string | undefined => {
    try {
      return fs.readFileSync(path.join(dir, file), 'utf8');
    } catch {
      return undefined;
    }
  };
  const cpu = parseFlatKeyed(rd('cpu.stat'));
  const mem = parseFlatKeyed(rd('memory.stat'));
  const events = parseFlatKeyed(rd('memory.events'));
  const io = parseIoStat(rd('io.stat'));
  const memMax = rd('memory.max')?.trim();
  let limit = memMax && memMax !== 'max' ? Number(memMax) : hostMemory;
  if (hostMemory > 0 && limit > hostMemory) limit = hostMemory;
  const pidsMax = rd('pids.max')?.trim();
  const stats: Record<string, number> = {};
  for (const k of V2_MEMORY_KEYS) stats[k] = mem[k] ?? 0;
  return {
    pids_stats: {
      current: num(rd('pids.current')),
      ...(pidsMax && pidsMax !== 'max' ? { limit: Number(pidsMax) } : {}),
    },
    // moby statsV2: read and write bytes per device, nothing else
    blkio_stats: blkioStats(
      io.flatMap((d) => [
        { major: d.major, minor: d.minor, op: 'read', value: d.v.rbytes ?? 0 },
        { major: d.major, minor: d.minor, op: 'write', value: d.v.wbytes ?? 0 },
      ]),
    ),
    cpu_usage: {
      // v2 has no per-CPU usage
      total_usage: (cpu.usage_usec ?? 0) * 1000,
      usage_in_kernelmode: (cpu.system_usec ?? 0) * 1000,
      usage_in_usermode: (cpu.user_usec ?? 0) * 1000,
    },
    throttling_data: {
      periods: cpu.nr_periods ?? 0,
      throttled_periods: cpu.nr_throttled ?? 0,
      throttled_time: (cpu.throttled_usec ?? 0) * 1000,
    },
    memory_stats: {
      // no max_usage in v2 (moby leaves it out)
      usage: num(rd('memory.current')),
      stats,
      failcnt: events.oom ?? 0,
      limit,
    },
  };
}

/**
 * cgroup v1: `rel` is the container's cgroup path under each controller's
 * hierarchy (`<root>/<controller>/<rel>`).
 */
export function statsV1(root: string, rel: string, hostMemory: number): CgroupStats {
  const rd = (ctl: string, file: string): string | undefined => {
    try {
      return fs.readFileSync(path.join(root, ctl, rel, file), 'utf8');
    } catch {
      return undefined;
    }
  };
  const ticksNs = 1e9 / 100;
  const cpuStat = parseFlatKeyed(rd('cpuacct', 'cpuacct.stat'));
  const percpu = (rd('cpuacct', 'cpuacct.usage_percpu') ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  const thr = parseFlatKeyed(rd('cpu', 'cpu.stat'));
  const blk = (file: string) =>
    (rd('blkio', file) ?? '')
      .split('\n')
      .map((l) => /^(\d+):(\d+) (\w+) (\d+)$/.exec(l))
      .filter((m): m is RegExpExecArray => !!m)
      .map((m) => ({ major: Number(m[1]), minor: Number(m[2]), op: m[3]!, value: Number(m[4]) }));
  const pidsMax = rd('pids', 'pids.max')?.trim();
  const limit = num(rd('memory', 'memory.limit_in_bytes'));
  return {
    pids_stats: {
      current: num(rd('pids', 'pids.current')),
      ...(pidsMax && pidsMax !== 'max' ? { limit: Number(pidsMax) } : {}),
    },
    blkio_stats: blkioStats(blk('blkio.throttle.io_service_bytes'), blk('blkio.throttle.io_serviced')),
    cpu_usage: {
      total_usage: num(rd('cpuacct', 'cpuacct.usage')),
      ...(percpu.length ? { percpu_usage: percpu } : {}),
      usage_in_kernelmode: (cpuStat.system ?? 0) * ticksNs,
      usage_in_usermode: (cpuStat.user ?? 0) * ticksNs,
    },
    throttling_data: {
      periods: thr.nr_periods ?? 0,
      throttled_periods: thr.nr_throttled ?? 0,
      throttled_time: thr.throttled_time ?? 0,
    },
    memory_stats: {
      usage: num(rd('memory', 'memory.usage_in_bytes')),
      max_usage: num(rd('memory', 'memory.max_usage_in_bytes')),
      stats: parseFlatKeyed(rd('memory', 'memory.stat')),
      failcnt: num(rd('memory', 'memory.failcnt')),
      limit: limit > 0 && limit < 2 ** 62 ? limit : hostMemory,
    },
  };
}
