// Read-only views of containers (moby daemon/list.go, inspect.go, top_unix.go,
// stats*.go): `docker ps` with its filters, inspect, top and stats (from the
// container's cgroup, v1 or v2).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Container, humanStatus, statusOf, ZERO_TIME } from '../container/index.js';
import { conflict, internal, invalidArgument } from '../errors/index.js';
import type { ImageId } from '../image/index.js';
import { blkioStats, type CgroupStats, statsV1, statsV2 } from './cgroup-stats.js';
import type { ContainersCore } from './containers-core.js';
import { cgroupVersion } from './system.js';

const execFileP = promisify(execFile);

/** What the list needs of the API's Filters (src/api/filters.ts satisfies it). */
export interface ListFilters {
  validate(accepted: Iterable<string>): unknown;
  contains(key: string): boolean;
  get(key: string): string[];
  matchKVList(key: string, labels: Record<string, string> | null | undefined): boolean;
}

const ACCEPTED = [
  'ancestor',
  'before',
  'expose',
  'exited',
  'health',
  'id',
  'isolation',
  'is-task',
  'label',
  'name',
  'network',
  'publish',
  'since',
  'status',
  'volume',
];
const STATUSES = new Set(['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead']);
const HEALTH = new Set(['starting', 'healthy', 'unhealthy', 'none']);

function mountsOf(c: Container, volumePath: (name: string) => string): Array<Record<string, unknown>> {
  return Object.values(c.MountPoints).map((m) => {
    const mode = m.Relabel ?? (m.Type === 'volume' ? 'z' : '');
    const o: Record<string, unknown> = { Type: m.Type };
    if (m.Type === 'volume') o.Name = m.Name;
    o.Source = m.Source || (m.Type === 'volume' && m.Name ? volumePath(m.Name) : '');
    o.Destination = m.Destination;
    if (m.Type === 'volume') o.Driver = m.Driver || 'local';
    o.Mode = mode;
    o.RW = m.RW;
    o.Propagation = m.Propagation ?? (m.Type === 'bind' ? 'rprivate' : '');
    return o;
  });
}

export class ContainerViews {
  constructor(private readonly core: ContainersCore) {}

  /** Config.Image while it still names the container's image, else the image ID (moby). */
  private imageName(c: Container, cache: Map<string, string | undefined>): string {
    const want = c.Config.Image ?? '';
    if (!cache.has(want)) {
      try {
        cache.set(want, this.core.d.images.service.getImage(want).id);
      } catch {
        cache.set(want, undefined); // the reference moved or was removed
      }
    }
    return cache.get(want) === c.Image ? want : c.Image;
  }

  /** GET /containers/json. */
  async list(o: { all?: boolean; limit?: number; size?: boolean; filters: ListFilters }): Promise<unknown[]> {
    const f = o.filters;
    f.validate(ACCEPTED);
    for (const s of f.get('status')) if (!STATUSES.has(s)) throw invalidArgument(`Invalid filter 'status=${s}'`);
    for (const h of f.get('health')) if (!HEALTH.has(h)) throw invalidArgument(`Invalid filter 'health=${h}'`);
    const exited = f.get('exited').map((v) => {
      if (!/^-?\d+$/.test(v)) throw invalidArgument(`strconv.Atoi: parsing "${v}": invalid syntax`);
      return Number(v);
    });
    const store = this.core.d.store;
    const createdOf = (ref: string) => store.get(ref).Created;
    const before = f.get('before').map(createdOf);
    const since = f.get('since').map(createdOf);
    // moby: each ancestor that resolves to an image stands for it and all its
    // descendants (children recorded by commit/build); one that does not
    // resolve is skipped (not an error), so it matches nothing.
    const ancestors = new Set<string>();
    for (const a of f.get('ancestor')) {
      let id: ImageId;
      try {
        id = this.core.d.images.service.getImage(a).id as ImageId;
      } catch {
        continue;
      }
      const todo = [id];
      for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
        if (ancestors.has(next)) continue;
        ancestors.add(next);
        todo.push(...this.core.d.imageStore.children(next));
      }
    }
    const isTask = f.get('is-task');
    const all = o.all || (o.limit ?? 0) > 0 || f.contains('status') || f.contains('exited');
    const rx = (vals: string[], s: string) => vals.length === 0 || vals.some((v) => new RegExp(v).test(s));
    const out: unknown[] = [];
    const images = new Map<string, string | undefined>();
    const list = store.all().sort((a, b) => (a.Created < b.Created ? 1 : a.Created > b.Created ? -1 : 0));
    for (const c of list) {
      const st = c.State;
      const status = statusOf(st);
      if (!all && !st.Running) continue;
      if (!rx(f.get('id'), c.ID)) continue;
      if (!rx(f.get('name'), c.Name)) continue;
      if (!f.matchKVList('label', c.Config.Labels)) continue;
      if (f.contains('status') && !f.get('status').includes(status)) continue;
      if (exited.length && (st.Running || status === 'created' || !exited.includes(st.ExitCode))) continue;
      if (f.contains('health') && !f.get('health').includes(st.Health?.Status ?? 'none')) continue;
      if (before.length && !(c.Created < before[0]!)) continue;
      if (since.length && !(c.Created > since[0]!)) continue;
      if (f.contains('ancestor') && !ancestors.has(c.Image)) continue;
      if (isTask.length && isTask.includes('true')) continue;
      if (f.contains('publish') || f.contains('expose')) continue;
      if (f.contains('isolation') && !f.get('isolation').includes('default')) continue;
      if (f.contains('volume')) {
        const vs = f.get('volume');
        if (!Object.values(c.MountPoints).some((m) => vs.includes(m.Name) || vs.includes(m.Destination))) continue;
      }
      if (f.contains('network')) {
        const ns = f.get('network');
        if (!Object.keys(c.NetworkSettings.Networks).some((n) => ns.includes(n))) continue;
      }
      const s: Record<string, unknown> = {
        Id: c.ID,
        Names: [c.Name],
        Image: this.imageName(c, images),
        ImageID: c.Image,
        Command: c.Args.length ? `${c.Path} ${c.Args.join(' ')}` : c.Path,
        Created: Math.floor(Date.parse(c.Created) / 1000),
        Ports: [],
        Labels: c.Config.Labels ?? {},
        State: status,
        Status: humanStatus(st),
        HostConfig: { NetworkMode: c.HostConfig.NetworkMode ?? 'none' },
        NetworkSettings: { Networks: c.NetworkSettings.Networks },
        Mounts: mountsOf(c, (n) => this.core.d.volumes.local.dataPath(n)),
      };
      if (o.size) {
        const sz = await this.sizes(c);
        s.SizeRw = sz.rw;
        s.SizeRootFs = sz.root;
      }
      out.push(s);
      if (o.limit && o.limit > 0 && out.length >= o.limit) break;
    }
    return out;
  }

  private async sizes(c: Container): Promise<{ rw: number; root: number }> {
    let rw = 0;
    try {
      rw = await this.core.d.layers.getRWLayer(c.ID).size();
    } catch {
      rw = 0;
    }
    let root = rw;
    try {
      root += this.core.d.imageStore.size(c.Image as never);
    } catch {
      // image gone
    }
    return { rw, root };
  }

  /** GET /containers/{id}/json (API 1.41 ContainerJSON). */
  async inspect(ref: string, size: boolean, execIds: (id: string) => string[]): Promise<Record<string, unknown>> {
    const c = this.core.get(ref);
    const st = c.State;
    const state: Record<string, unknown> = {
      Status: statusOf(st),
      Running: st.Running,
      Paused: st.Paused,
      Restarting: st.Restarting,
      OOMKilled: st.OOMKilled,
      Dead: st.Dead,
      Pid: st.Pid,
      ExitCode: st.ExitCode,
      Error: st.Error,
      StartedAt: st.StartedAt,
      FinishedAt: st.FinishedAt,
    };
    if (st.Health) state.Health = st.Health;
    let graph: Record<string, string> = {};
    try {
      graph = await this.core.d.layers.getRWLayer(c.ID).metadata();
    } catch {
      graph = {};
    }
    const ids = execIds(c.ID);
    const ns = c.NetworkSettings;
    const out: Record<string, unknown> = {
      Id: c.ID,
      Created: c.Created,
      Path: c.Path,
      Args: c.Args,
      State: state,
      Image: c.Image,
      ResolvConfPath: c.ResolvConfPath,
      HostnamePath: c.HostnamePath,
      HostsPath: c.HostsPath,
      LogPath: c.LogPath,
      Name: c.Name,
      RestartCount: c.RestartCount,
      Driver: c.Driver,
      Platform: c.OS || 'linux',
      MountLabel: c.MountLabel,
      ProcessLabel: c.ProcessLabel,
      AppArmorProfile: c.AppArmorProfile,
      ExecIDs: ids.length ? ids : null,
      HostConfig: c.HostConfig,
      GraphDriver: { Data: graph, Name: c.Driver },
    };
    if (size) {
      const sz = await this.sizes(c);
      out.SizeRw = sz.rw;
      out.SizeRootFs = sz.root;
    }
    out.Mounts = mountsOf(c, (n) => this.core.d.volumes.local.dataPath(n));
    out.Config = c.toJSON().Config;
    out.NetworkSettings = {
      Bridge: ns.Bridge,
      SandboxID: ns.SandboxID,
      HairpinMode: ns.HairpinMode,
      LinkLocalIPv6Address: ns.LinkLocalIPv6Address,
      LinkLocalIPv6PrefixLen: ns.LinkLocalIPv6PrefixLen,
      Ports: ns.Ports ?? {},
      SandboxKey: ns.SandboxKey,
      SecondaryIPAddresses: ns.SecondaryIPAddresses,
      SecondaryIPv6Addresses: ns.SecondaryIPv6Addresses,
      EndpointID: '',
      Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: '',
      IPPrefixLen: 0,
      IPv6Gateway: '',
      MacAddress: '',
      Networks: ns.Networks,
    };
    return out;
  }

  /** GET /containers/{id}/top: the runtime's pids, then `ps` filtered to them. */
  async top(ref: string, psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }> {
    const c = this.core.get(ref);
    const task = this.core.tasks.get(c.ID);
    if (!task || !c.State.Running || c.State.Restarting) throw conflict(`Container ${c.ID} is not running`);
    const pids = new Set(await task.runtime.ps(c.ID));
    const args = (psArgs || '-ef').split(/\s+/).filter(Boolean);
    let stdout: string;
    try {
      ({ stdout } = await execFileP('ps', args, { maxBuffer: 16 << 20 }));
    } catch (e) {
      throw internal(`Error running ps: ${(e as Error).message}`);
    }
    const lines = stdout.split('\n').filter((l) => l.trim() !== '');
    const titles = lines[0]!.trim().split(/\s+/);
    const pidIdx = titles.indexOf('PID');
    if (pidIdx < 0) throw internal(`Couldn't find PID field in ps output`);
    const processes: string[][] = [];
    for (const l of lines.slice(1)) {
      const fields = l.trim().split(/\s+/);
      if (!pids.has(Number(fields[pidIdx]))) continue;
      const row = fields.slice(0, titles.length - 1);
      row.push(fields.slice(titles.length - 1).join(' '));
      processes.push(row);
    }
    return { Titles: titles, Processes: processes };
  }

  /** One stats sample (moby types.StatsJSON) from the container's cgroup (v1 or v2). */
  sample(c: Container): Record<string, unknown> {
    const running = !!this.core.tasks.get(c.ID) && c.State.Running;
    const cg = this.cgroupPath(c);
    const s: CgroupStats | undefined = running
      ? cgroupVersion() === '2'
        ? statsV2(path.join('/sys/fs/cgroup', cg), os.totalmem())
        : statsV1('/sys/fs/cgroup', cg, os.totalmem())
      : undefined;
    const now = new Date().toISOString().replace('Z', '000000Z');
    return {
      read: running ? now : ZERO_TIME,
      preread: ZERO_TIME,
      pids_stats: s?.pids_stats ?? {},
      blkio_stats: s?.blkio_stats ?? blkioStats(),
      num_procs: 0,
      storage_stats: {},
      cpu_stats: {
        cpu_usage: s?.cpu_usage ?? { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 },
        ...(running ? { system_cpu_usage: systemCpuUsage(), online_cpus: os.cpus().length } : {}),
        throttling_data: s?.throttling_data ?? { periods: 0, throttled_periods: 0, throttled_time: 0 },
      },
      precpu_stats: {
        cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 },
        throttling_data: {},
      },
      memory_stats: s?.memory_stats ?? {},
      name: c.Name,
      id: c.ID,
    };
  }

  private cgroupPath(c: Container): string {
    const parent = c.HostConfig.CgroupParent || this.core.cfg.cgroupParent || '/berth';
    if (this.core.cgroupDriver() === 'systemd') return path.join(parent || 'system.slice', `berth-${c.ID}.scope`);
    return path.join(parent, c.ID);
  }

  /**
   * GET /containers/{id}/stats: `write` gets one JSON document per sample.
   * stream=false takes two samples one second apart (precpu filled) unless one-shot.
   */
  async stats(
    ref: string,
    o: { stream: boolean; oneShot: boolean },
    write: (doc: unknown) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const c = this.core.get(ref);
    let prev = this.sample(c);
    if (!o.stream && o.oneShot) return write(prev);
    for (let i = 0; !signal.aborted; i++) {
      await new Promise((r) => setTimeout(r, 1000).unref());
      if (signal.aborted) return;
      const cur = this.sample(c);
      cur.preread = prev.read;
      cur.precpu_stats = prev.cpu_stats;
      write(cur);
      prev = cur;
      if (!o.stream) return;
      if (!c.State.Running && i > 0) return;
    }
  }
}

function systemCpuUsage(): number {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1, 8).map(Number);
    return f.reduce((a, b) => a + b, 0) * (1e9 / 100);
  } catch {
    return 0;
  }
}
