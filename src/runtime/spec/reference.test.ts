// Differential test against the reference dockerd 20.10: the same `docker run`
// flags on the same busybox image, berth's ContainerCreator + buildSpec versus
// the config.json containerd wrote for dockerd, field by field; then berth's
// spec runs under runc and must show the same CapEff and `id` as the
// reference's container. Intended differences (not compared): root.path,
// cgroupsPath (/berth/<id> vs /docker/<id>), hooks (libnetwork-setkey), the
// host network namespace entry (berth: none; dockerd: a bind of the host's).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ReferenceDockerd, referenceDockerdUnavailable, unmountUnder } from '../../../test/kit/reference-dockerd.js';
import { ContainerCreator, ContainerStore } from '../../container/index.js';
import { LayerStore } from '../../layer/index.js';
import type { ImageConfig } from '../../oci/index.js';
import { VolumeService } from '../../volume/index.js';
import { buildSpec, mountVolumes, writeBundle } from './builder.js';
import type { Mount, Spec } from './types.js';

const why = referenceDockerdUnavailable() ?? (fs.existsSync('/usr/sbin/runc') ? undefined : 'runc missing');

const CASES: Record<string, string[]> = {
  default: [],
  caps: ['--cap-add', 'SYS_ADMIN', '--cap-add', 'CAP_NET_ADMIN', '--cap-drop', 'CHOWN', '--cap-drop', 'mknod'],
  capsall: ['--cap-drop', 'ALL', '--cap-add', 'KILL'],
  ro: ['--read-only', '--tmpfs', '/run', '--tmpfs', '/scratch:rw,noexec,size=65536k,mode=1770'],
  user: ['--user', 'user1', '--group-add', 'extra', '--group-add', '5'],
  ulimit: ['--ulimit', 'nofile=1024:2048', '--ulimit', 'nproc=512'],
  vol: [
    '-v',
    'vol1:/vol',
    '-v',
    'HOSTDIR:/host:ro',
    '--mount',
    'type=tmpfs,target=/tm,tmpfs-size=1m,tmpfs-mode=0700',
    '-v',
    '/anon',
  ],
  init: ['--init'],
  res: [
    '--memory',
    '64m',
    '--cpus',
    '1.5',
    '--pids-limit',
    '100',
    '--cpu-shares',
    '512',
    '--shm-size',
    '128m',
    '--memory-swap',
    '128m',
  ],
  misc: [
    '--security-opt',
    'no-new-privileges',
    '--oom-score-adj',
    '100',
    '--sysctl',
    'net.ipv4.ip_forward=1',
    '-e',
    'A=b',
    '-w',
    '/tmp',
    '--hostname',
    'hh',
    '--device',
    '/dev/fuse:/dev/myfuse:r',
  ],
  host: ['--network', 'host', '--ipc', 'host', '--pid', 'host', '--uts', 'host'],
};
const RUN_CASES = new Set(['default', 'caps', 'capsall', 'user', 'ulimit', 'misc']);

describe('OCI spec vs reference dockerd 20.10', { skip: why, timeout: 300_000 }, () => {
  let d: ReferenceDockerd;
  let work: string;
  let berthRoot: string;
  let layers: LayerStore;
  let store: ContainerStore;
  let creator: ContainerCreator;
  let volumes: VolumeService;
  const refs: Record<
    string,
    { spec: Spec; v2: Record<string, unknown>; hc: Record<string, unknown>; status: string; id: string }
  > = {};

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-specref-'));
    const r = path.join(work, 'rootfs');
    for (const dir of ['bin', 'etc', 'tmp', 'data', 'home/u']) fs.mkdirSync(path.join(r, dir), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(r, 'bin/busybox'));
    fs.chmodSync(path.join(r, 'bin/busybox'), 0o755);
    for (const a of ['sh', 'sleep', 'grep', 'id', 'cat', 'true']) fs.symlinkSync('busybox', path.join(r, 'bin', a));
    fs.writeFileSync(
      path.join(r, 'etc/passwd'),
      'root:x:0:0:root:/root:/bin/sh\nuser1:x:1000:1000:u:/home/u:/bin/sh\n',
    );
    fs.writeFileSync(path.join(r, 'etc/group'), 'root:x:0:\ngrp1:x:1000:\nextra:x:2000:user1\n');
    fs.writeFileSync(path.join(r, 'data/hello'), 'from-image\n');
    fs.mkdirSync(path.join(work, 'hostdir'));
    const tar = path.join(work, 'base.tar');
    execFileSync('tar', ['--numeric-owner', '-C', r, '-cf', tar, '.']);
    d = await ReferenceDockerd.start({ baseDir: work });
    await d.dockerOk([
      'import',
      '-c',
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '-c',
      'VOLUME /data',
      tar,
      'bb:1',
    ]);
    const imageId = (await d.dockerOk(['inspect', '-f', '{{.Id}}', 'bb:1'])).trim();
    for (const [name, flags0] of Object.entries(CASES)) {
      const flags = flags0.map((f) => f.replace('HOSTDIR', path.join(work, 'hostdir')));
      const net = flags.includes('--network') ? [] : ['--network', 'none'];
      const id = (await d.dockerOk(['run', '-d', '--name', name, ...net, ...flags, 'bb:1', 'sleep', '600'])).trim();
      const dir = path.join(d.dataRoot, 'containers', id);
      const bundle = execFileSync('find', [d.execRoot, '-path', `*moby/${id}/config.json`])
        .toString()
        .trim();
      const status = await d.dockerOk(['exec', id, 'sh', '-c', 'grep CapEff /proc/self/status; id']);
      refs[name] = {
        id,
        spec: JSON.parse(fs.readFileSync(bundle, 'utf8')),
        v2: JSON.parse(fs.readFileSync(path.join(dir, 'config.v2.json'), 'utf8')),
        hc: JSON.parse(fs.readFileSync(path.join(dir, 'hostconfig.json'), 'utf8')),
        status,
      };
      await d.docker(['rm', '-f', id]);
    }
    await d.destroy();
    berthRoot = path.join(work, 'berth');
    layers = await LayerStore.open(berthRoot);
    const layer = await layers.register(fs.createReadStream(tar));
    store = ContainerStore.open(berthRoot);
    volumes = VolumeService.open(berthRoot);
    const config: ImageConfig = {
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Volumes: { '/data': {} } },
    };
    creator = new ContainerCreator({
      store,
      volumes,
      layers,
      resolveImage: async () => ({ id: imageId, config }),
      daemon: {},
      hostname: () => os.hostname(),
    });
  });

  after(async () => {
    for (const c of store?.all() ?? []) {
      try {
        await layers.releaseRWLayer(c.ID);
      } catch {}
    }
    await layers?.close();
    if (work) {
      unmountUnder([work]);
      fs.rmSync(work, { recursive: true, force: true });
    }
    for (const ctl of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
      try {
        fs.rmdirSync(path.join('/sys/fs/cgroup', ctl, 'berth'));
      } catch {}
    }
  });

  const norm = (m: Mount, roots: string[]) => {
    let src = m.source;
    for (const r of roots) if (src.startsWith(r)) src = `<root>${src.slice(r.length).replace(/[a-f0-9]{64}/g, '<id>')}`;
    return { destination: m.destination, type: m.type, source: src, options: m.options };
  };

  for (const name of Object.keys(CASES)) {
    test(`docker run ${name}`, async () => {
      const ref = refs[name]!;
      const refConfig = ref.v2.Config as Record<string, unknown>;
      const { container: c } = await creator.create({
        config: { ...refConfig, Image: 'bb:1', Cmd: ['sleep', '600'] },
        hostConfig: structuredClone(ref.hc),
      });
      // config.v2.json / hostconfig.json: same keys, same key order, matching values
      const ours = JSON.parse(fs.readFileSync(path.join(c.root, 'config.v2.json'), 'utf8'));
      assert.deepEqual(Object.keys(ours), Object.keys(ref.v2));
      const oursHc = JSON.parse(fs.readFileSync(path.join(c.root, 'hostconfig.json'), 'utf8'));
      assert.deepEqual(Object.keys(oursHc), Object.keys(ref.hc));
      for (const k of ['Path', 'Args', 'Driver', 'OS', 'NoNewPrivileges', 'Image'])
        assert.deepEqual(ours[k], ref.v2[k], k);
      assert.deepEqual(ours.Config, ref.v2.Config);
      assert.deepEqual(Object.keys(ours.MountPoints).sort(), Object.keys(ref.v2.MountPoints as object).sort());
      assert.deepEqual(
        Object.keys(ours.NetworkSettings.Networks),
        Object.keys((ref.v2.NetworkSettings as { Networks: object }).Networks),
      );

      const rootfs = await layers.getRWLayer(c.ID).mount();
      try {
        const { spec } = buildSpec({
          container: c,
          rootfs,
          sysctlExists: () => true,
          volumePaths: mountVolumes(c, volumes),
        });
        const r = ref.spec;
        // dockerd's --group-add gids come out of a Go map (runc GetAdditionalGroups), so their order
        // is random (about 1 run in 8 swaps the user case's [2000, 5]); setgroups(2) sorts them
        // anyway. Compare additionalGids as a sorted list: still the same gids, each as often.
        const sortedGids = (p: Spec['process']) =>
          p.user.additionalGids
            ? { ...p, user: { ...p.user, additionalGids: [...p.user.additionalGids].sort((a, b) => a - b) } }
            : p;
        assert.deepEqual(sortedGids(spec.process), sortedGids(r.process), 'process');
        assert.equal(!!spec.root.readonly, !!r.root.readonly, 'root.readonly');
        assert.equal(spec.hostname, r.hostname, 'hostname');
        const roots = [path.join(d.dataRoot), berthRoot];
        // dockerd orders user mounts by depth only; within a depth its order comes from a Go map
        // (random), so compare the default mounts in order and the rest as sorted lists
        const byDest = (ms: Mount[]) =>
          ms.map((m) => norm(m, roots)).sort((a, b) => (a.destination < b.destination ? -1 : 1));
        assert.deepEqual(
          spec.mounts.slice(0, 6).map((m) => norm(m, roots)),
          r.mounts.slice(0, 6).map((m) => norm(m, roots)),
        );
        assert.deepEqual(byDest(spec.mounts), byDest(r.mounts), 'mounts');
        assert.deepEqual(spec.linux.maskedPaths, r.linux.maskedPaths);
        assert.deepEqual(spec.linux.readonlyPaths, r.linux.readonlyPaths);
        const nsRef = name === 'host' ? r.linux.namespaces.filter((n) => n.type !== 'network') : r.linux.namespaces;
        assert.deepEqual(spec.linux.namespaces, nsRef, 'namespaces');
        if (name !== 'host') assert.deepEqual(spec.linux.sysctl, r.linux.sysctl, 'sysctl');
        assert.deepEqual(spec.linux.resources, r.linux.resources, 'resources');
        assert.deepEqual(spec.linux.devices, r.linux.devices, 'devices');
        assert.equal(spec.linux.rootfsPropagation, r.linux.rootfsPropagation);
        const sc = (s: Spec) => ({
          defaultAction: s.linux.seccomp?.defaultAction,
          architectures: s.linux.seccomp?.architectures,
          syscalls: new Set(s.linux.seccomp?.syscalls?.map((x) => JSON.stringify(x))),
        });
        assert.deepEqual(sc(spec), sc(r), 'seccomp');
        assert.equal(spec.linux.cgroupsPath, `/berth/${c.ID}`);
        assert.equal(r.linux.cgroupsPath, `/docker/${ref.id}`);

        if (RUN_CASES.has(name)) {
          const run = structuredClone(spec);
          run.process.args = ['sh', '-c', 'grep CapEff /proc/self/status; id'];
          const execRoot = path.join(work, 'exec');
          const bundle = writeBundle(execRoot, c.ID, run);
          const out = spawnSync('runc', ['--root', path.join(execRoot, 'runc'), 'run', '--bundle', bundle, c.ID], {
            encoding: 'utf8',
            timeout: 60_000, // runc under a loaded machine can be slow; a kill here would read as a spec mismatch
          });
          assert.equal(
            out.status,
            0,
            `runc run: status ${out.status} signal ${out.signal} ${out.error ?? ''} ${out.stderr}`,
          );
          assert.equal(out.stdout, ref.status, 'CapEff and id inside the container');
        }
      } finally {
        await layers.getRWLayer(c.ID).unmount();
      }
    });
  }
});
