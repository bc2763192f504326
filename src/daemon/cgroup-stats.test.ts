// cgroup v2 stats against a fixture tree in the kernel's file formats
// (Documentation/admin-guide/cgroup-v2.rst), and v1 against its layout.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseIoStat, statsV1, statsV2 } from './cgroup-stats.js';

function tree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-fixture-'));
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), text);
  }
  return dir;
}

const V2 = {
  'memory.current': '8634368\n',
  'memory.max': '268435456\n',
  'memory.stat':
    'anon 2162688\nfile 4866048\nkernel 786432\nkernel_stack 32768\npagetables 69632\nsec_pagetables 0\n' +
    'percpu 0\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 2568192\nfile_dirty 0\n' +
    'file_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 2109440\n' +
    'active_anon 53248\ninactive_file 3784704\nactive_file 1081344\nunevictable 0\nslab_reclaimable 411392\n' +
    'slab_unreclaimable 221184\nslab 632576\nworkingset_refault_anon 0\nworkingset_refault_file 0\n' +
    'workingset_activate_anon 0\nworkingset_activate_file 0\nworkingset_restore_anon 0\n' +
    'workingset_restore_file 0\nworkingset_nodereclaim 0\npgscan 0\npgsteal 0\npgscan_kswapd 0\n' +
    'pgscan_direct 0\npgsteal_kswapd 0\npgsteal_direct 0\npgfault 5094\npgmajfault 24\npgrefill 0\n' +
    'pgactivate 264\npgdeactivate 0\npglazyfree 0\npglazyfreed 0\nthp_fault_alloc 0\nthp_collapse_alloc 0\n',
  'memory.events': 'low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n',
  'cpu.stat':
    'usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 40\nnr_throttled 7\n' +
    'throttled_usec 9000\nnr_bursts 0\nburst_usec 0\n',
  'io.stat':
    '8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n' +
    '8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n',
  'pids.current': '3\n',
  'pids.max': '100\n',
};

test('cgroup v2: the unified files become Docker stats JSON (moby statsV2)', () => {
  const dir = tree(V2);
  try {
    const s = statsV2(dir, 8 * 2 ** 30);
    assert.deepEqual(s.pids_stats, { current: 3, limit: 100 });
    assert.deepEqual(s.cpu_usage, {
      total_usage: 123456000,
      usage_in_kernelmode: 23456000,
      usage_in_usermode: 100000000,
    });
    assert.deepEqual(s.throttling_data, { periods: 40, throttled_periods: 7, throttled_time: 9000000 });
    assert.equal(s.memory_stats.usage, 8634368);
    assert.equal(s.memory_stats.limit, 268435456);
    assert.equal(s.memory_stats.failcnt, 2);
    assert.equal(s.memory_stats.max_usage, undefined);
    assert.equal(s.memory_stats.stats?.inactive_file, 3784704);
    assert.equal(s.memory_stats.stats?.anon, 2162688);
    assert.equal(s.memory_stats.stats?.slab, 632576);
    assert.equal(s.memory_stats.stats?.pgmajfault, 24);
    assert.equal(s.memory_stats.stats?.kernel, undefined); // not in moby's map
    assert.deepEqual(s.blkio_stats.io_service_bytes_recursive, [
      { major: 8, minor: 16, op: 'read', value: 1459200 },
      { major: 8, minor: 16, op: 'write', value: 314773504 },
      { major: 8, minor: 0, op: 'read', value: 90430464 },
      { major: 8, minor: 0, op: 'write', value: 299008000 },
    ]);
    assert.equal(s.blkio_stats.io_serviced_recursive, null);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('cgroup v2: "max" limits, missing controllers and an empty io.stat', () => {
  const dir = tree({
    'memory.current': '4096\n',
    'memory.max': 'max\n',
    'memory.stat': 'anon 4096\n',
    'cpu.stat': 'usage_usec 10\nuser_usec 6\nsystem_usec 4\n', // no cpu controller: no throttling keys
    'io.stat': '',
    'pids.current': '1\n',
    'pids.max': 'max\n',
  });
  try {
    const s = statsV2(dir, 1 << 30);
    assert.equal(s.memory_stats.limit, 1 << 30);
    assert.deepEqual(s.pids_stats, { current: 1 });
    assert.deepEqual(s.throttling_data, { periods: 0, throttled_periods: 0, throttled_time: 0 });
    assert.deepEqual(s.blkio_stats.io_service_bytes_recursive, []);
    assert.equal(s.cpu_usage.total_usage, 10000);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(parseIoStat('253:0 rbytes=1 wbytes=2\nbogus\n'), [
    { major: 253, minor: 0, v: { rbytes: 1, wbytes: 2 } },
  ]);
});

test('cgroup v1: per-controller hierarchies', () => {
  const rel = 'berth/abc';
  const dir = tree({
    [`cpuacct/${rel}/cpuacct.usage`]: '5000\n',
    [`cpuacct/${rel}/cpuacct.usage_percpu`]: '3000 2000 \n',
    [`cpuacct/${rel}/cpuacct.stat`]: 'user 3\nsystem 1\n',
    [`cpu/${rel}/cpu.stat`]: 'nr_periods 2\nnr_throttled 1\nthrottled_time 500\n',
    [`memory/${rel}/memory.usage_in_bytes`]: '1000\n',
    [`memory/${rel}/memory.max_usage_in_bytes`]: '2000\n',
    [`memory/${rel}/memory.limit_in_bytes`]: '9223372036854771712\n',
    [`memory/${rel}/memory.failcnt`]: '0\n',
    [`memory/${rel}/memory.stat`]: 'cache 10\ntotal_inactive_file 5\n',
    [`pids/${rel}/pids.current`]: '2\n',
    [`pids/${rel}/pids.max`]: 'max\n',
    [`blkio/${rel}/blkio.throttle.io_service_bytes`]: '8:0 Read 10\n8:0 Write 20\nTotal 30\n',
  });
  try {
    const s = statsV1(dir, rel, 777);
    assert.deepEqual(s.cpu_usage, {
      total_usage: 5000,
      percpu_usage: [3000, 2000],
      usage_in_kernelmode: 10_000_000,
      usage_in_usermode: 30_000_000,
    });
    assert.equal(s.memory_stats.limit, 777);
    assert.equal(s.memory_stats.max_usage, 2000);
    assert.deepEqual(s.memory_stats.stats, { cache: 10, total_inactive_file: 5 });
    assert.deepEqual(s.blkio_stats.io_service_bytes_recursive, [
      { major: 8, minor: 0, op: 'Read', value: 10 },
      { major: 8, minor: 0, op: 'Write', value: 20 },
    ]);
    assert.deepEqual(s.throttling_data, { periods: 2, throttled_periods: 1, throttled_time: 500 });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
