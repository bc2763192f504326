// Differential: the same image (one busybox rootfs tar imported into both)
// run by berthd and by the reference dockerd 20.10, same flags: capabilities
// (CapEff), mount points, masked paths, environment, user, exit codes; and
// berth's json-file log read back by the reference's own json-file reader.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../kit/reference-dockerd.js';
import { IMPORT_CHANGES, makeTestRootfsTar } from './cli-containers-kit.js';
import { Berthd, CLI20, CLI28, cliUnavailable, run } from './cli-kit.js';

const skip = cliUnavailable() ?? referenceDockerdUnavailable();
if (skip) console.log(`# skipping cli-containers-ref: ${skip}`);

const IMG = 'bbox:1';

describe('containers: berthd vs reference dockerd 20.10', { skip, timeout: 200_000 }, () => {
  let ref: ReferenceDockerd;
  let b: Berthd;
  let work: string;
  const onRef = (args: string[], input?: string) =>
    run(CLI20, ['-H', ref.host, ...args], {
      env: { DOCKER_CONFIG: path.join(work, 'ref-cli') },
      ...(input !== undefined ? { input } : {}),
      timeoutMs: 60_000,
    });
  const onBerth = (args: string[], input?: string) =>
    b.docker(CLI28, args, { ...(input !== undefined ? { input } : {}), timeoutMs: 60_000 });
  const both = async (args: string[], input?: string) => {
    const [r, o] = await Promise.all([onRef(args, input), onBerth(args, input)]);
    return { ref: r, berth: o };
  };

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'cli-ctr-ref-'));
    const tar = await makeTestRootfsTar(work);
    [ref, b] = await Promise.all([ReferenceDockerd.start(), Berthd.start()]);
    for (const f of [onRef, onBerth]) {
      const r = await f(['import', ...IMPORT_CHANGES, tar, IMG]);
      assert.equal(r.code, 0, r.stderr);
    }
  });

  after(async () => {
    await Promise.allSettled([b?.destroy(), ref?.destroy()]);
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  const CASES: Array<[string, string[], string[]]> = [
    ['CapEff and id', [], ['sh', '-c', 'grep -E "^Cap(Eff|Prm|Bnd)" /proc/self/status; id']],
    ['user1', ['-u', 'user1'], ['sh', '-c', 'grep CapEff /proc/self/status; id']],
    ['cap-add/drop', ['--cap-add', 'SYS_ADMIN', '--cap-drop', 'CHOWN'], ['grep', 'CapEff', '/proc/self/status']],
    ['privileged', ['--privileged'], ['grep', 'CapEff', '/proc/self/status']],
    ['mount points', [], ['sh', '-c', 'cut -d" " -f2,3 /proc/mounts | sort']],
    [
      'read-only + tmpfs mounts',
      ['--read-only', '--tmpfs', '/run'],
      ['sh', '-c', 'cut -d" " -f2,3,4 /proc/mounts | grep -E " / | /run " | sed "s/,size=[^,]*//"'],
    ],
    ['environment', ['-e', 'A=1', '-w', '/tmp'], ['sh', '-c', 'env | grep -v ^HOSTNAME= | sort; pwd']],
    [
      'masked paths',
      [],
      [
        'sh',
        '-c',
        'cat /proc/kcore 2>&1 | wc -c; ls /sys/firmware | wc -l; echo x > /proc/sys/kernel/domainname; echo $?',
      ],
    ],
    ['exit code', [], ['sh', '-c', 'exit 3']],
    ['killed by a signal', [], ['sh', '-c', 'kill -9 $$']],
    [
      'ulimit/hostname',
      ['--ulimit', 'nofile=1024:2048', '-h', 'hh'],
      ['sh', '-c', 'ulimit -n; ulimit -Hn; cat /etc/hostname'],
    ],
  ];

  for (const [name, flags, cmd] of CASES) {
    test(`docker run ${name}`, async () => {
      const r = await both(['run', '--rm', '--network', 'none', ...flags, IMG, ...cmd]);
      assert.equal(r.berth.code, r.ref.code, `exit code (berth stderr: ${r.berth.stderr})`);
      assert.equal(r.berth.stdout.toString(), r.ref.stdout.toString());
    });
  }

  test('a missing executable: the same exit code (127)', async () => {
    const r = await both(['run', '--rm', '--network', 'none', IMG, 'nosuchcmd']);
    assert.equal(r.ref.code, 127);
    assert.equal(r.berth.code, 127, r.berth.stderr);
  });

  test("berth's json-file log is read by the reference's json-file reader", async () => {
    const script = 'echo "plain"; echo "to stderr" >&2; printf "tab\\there <&> \\"q\\" \\\\ é\\n"; printf "no newline"';
    const bo = await onBerth(['run', '--name', 'logsrc', '--network', 'none', IMG, 'sh', '-c', script]);
    assert.equal(bo.code, 0, bo.stderr);
    const ro = await onRef(['run', '--name', 'logdst', '--network', 'none', IMG, 'true']);
    assert.equal(ro.code, 0, ro.stderr);
    const src = (await onBerth(['inspect', '-f', '{{.LogPath}}', 'logsrc'])).stdout.toString().trim();
    const dst = (await onRef(['inspect', '-f', '{{.LogPath}}', 'logdst'])).stdout.toString().trim();
    // the reference's LogPath is inside its private mount namespace only under /run; data-root is shared
    await fsp.copyFile(src, dst);
    for (const args of [['logs'], ['logs', '--tail', '2'], ['logs', '-t']]) {
      const [r, o] = await Promise.all([onRef([...args, 'logdst']), onBerth([...args, 'logsrc'])]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(o.stdout.toString(), r.stdout.toString(), `${args.join(' ')} stdout`);
      assert.equal(o.stderr, r.stderr, `${args.join(' ')} stderr`);
    }
    assert.ok(fs.existsSync(src));
  });
});
