// The docker CLIs (28.x and 20.10) against berthd, side by side with the
// reference dockerd 20.10: the same `docker save` loaded into both, then
// images/inspect/history/tag/rmi/import/prune/df/events/save compared
// output for output; bad input compared status for status.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeFixtureImages } from '../kit/fixture-images.js';
import { ReferenceDockerd, referenceDockerdUnavailable } from '../kit/reference-dockerd.js';
import { Berthd, CLI20, CLI28, cliUnavailable, httpUnix, run } from './cli-kit.js';

const skip = cliUnavailable() ?? referenceDockerdUnavailable();
if (skip) console.log(`# skipping cli-images: ${skip}`);

const CLIS = [
  ['28', CLI28],
  ['20.10', CLI20],
] as const;

describe('docker CLI against berthd (images, system)', { skip, timeout: 170_000 }, () => {
  let ref: ReferenceDockerd;
  let b: Berthd;
  let work: string;
  let saveTar: string;
  let baseTar: string;
  let refLoadOut: string;
  const refDocker = (args: string[], input?: Buffer | string, cli: string = CLI28) =>
    run(cli, ['-H', ref.host, ...args], {
      env: { DOCKER_CONFIG: path.join(work, 'ref-cli') },
      ...(input ? { input } : {}),
    });

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'cli-images-'));
    [ref, b] = await Promise.all([ReferenceDockerd.start(), Berthd.start()]);
    await makeFixtureImages(ref, work);
    await ref.dockerOk([
      'import',
      '-c',
      'LABEL color=blue',
      '-c',
      'LABEL tier=1',
      path.join(work, 'base.tar'),
      'labelled:1',
    ]);
    baseTar = path.join(work, 'base.tar');
    saveTar = path.join(work, 'all.tar');
    await ref.dockerOk(['save', '-o', saveTar, 'bbase:1', 'multi:v1', 'other/multi:latest', 'labelled:1']);
    // the reference starts from the same state berthd will: only what the save tar holds
    await ref.dockerOk(['image', 'prune', '-af']);
    assert.equal((await ref.dockerOk(['images', '-aq'])).trim(), '');
    refLoadOut = await ref.dockerOk(['load', '-i', saveTar]);
  });

  after(async () => {
    await Promise.allSettled([b?.destroy(), ref?.destroy()]);
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  test('version and info with both CLIs', async () => {
    for (const [name, cli] of CLIS) {
      const v = await b.docker(cli, ['version', '--format', '{{.Server.APIVersion}} {{.Server.Os}}']);
      assert.equal(v.code, 0, `${name}: ${v.stderr}`);
      assert.equal(v.stdout.trim(), '1.41 linux');
      const info = await b.docker(cli, ['info']);
      assert.equal(info.code, 0, `${name}: ${info.stderr}`);
      assert.match(info.stdout, /Storage Driver: overlay2/);
      assert.match(info.stdout, new RegExp(`Docker Root Dir: ${b.dataRoot}`));
      assert.match(info.stdout + info.stderr, /bridge networking is not available yet/);
    }
    const f = await b.docker(CLI28, [
      'info',
      '--format',
      '{{.Driver}} {{.OSType}} {{.DefaultRuntime}} {{.Swarm.LocalNodeState}}',
    ]);
    assert.equal(f.stdout.trim(), 'overlay2 linux runc inactive');
  });

  test('load: the same save gives the same rows and inspect fields as the reference', async () => {
    const loaded = await b.docker(CLI28, ['load', '-i', saveTar]);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.equal(loaded.stdout, refLoadOut);
    assert.equal(loaded.stdout.trim().split('\n').length, 4);
    const fmt = ['images', '-a', '--no-trunc', '--format', '{{.Repository}} {{.Tag}} {{.ID}} {{.Size}}'];
    const sorted = (s: string) => s.trim().split('\n').sort();
    for (const [name, cli] of CLIS) {
      const mine = await b.docker(cli, fmt);
      assert.deepEqual(sorted(mine.stdout), sorted((await refDocker(fmt, undefined, cli)).stdout), name);
    }
    const fields =
      '{{.Id}}|{{json .RepoTags}}|{{.Size}}|{{json .RootFS}}|{{json .Config}}|{{.GraphDriver.Name}}|{{.Os}}|{{.Architecture}}|{{.Comment}}';
    for (const img of ['bbase:1', 'multi:v1', 'other/multi', 'labelled:1']) {
      const mine = await b.docker(CLI28, ['inspect', '--format', fields, img]);
      const theirs = await refDocker(['inspect', '--format', fields, img]);
      assert.equal(mine.stdout, theirs.stdout, img);
    }
    const hist = ['history', '--no-trunc', '--format', '{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}', 'multi:v1'];
    assert.equal((await b.docker(CLI20, hist)).stdout, (await refDocker(hist)).stdout);
  });

  test('images filters and --digests match the reference', async () => {
    const cases = [
      ['--filter', 'reference=multi'],
      ['--filter', 'reference=*/multi'],
      ['--filter', 'reference=*multi*'],
      ['--filter', 'label=color=blue'],
      ['--filter', 'label=tier'],
      ['--filter', 'label=color=red'],
      ['--filter', 'dangling=true'],
      ['--filter', 'dangling=false'],
      ['--filter', 'before=labelled:1'],
      ['--filter', 'since=bbase:1'],
      ['--digests'],
    ];
    for (const [name, cli] of CLIS) {
      for (const c of cases) {
        const args = ['images', ...c, '--format', '{{.Repository}}:{{.Tag}}:{{.Digest}}'];
        const mine = await b.docker(cli, args);
        const theirs = await refDocker(args, undefined, cli);
        assert.deepEqual(
          [mine.code, mine.stdout.trim().split('\n').sort(), mine.stderr],
          [theirs.code, theirs.stdout.trim().split('\n').sort(), theirs.stderr],
          `${name} ${c.join(' ')}`,
        );
      }
    }
    for (const bad of [
      ['--filter', 'foo=bar'],
      ['--filter', 'dangling=maybe'],
      ['--filter', 'before=nosuch'],
    ]) {
      const mine = await b.docker(CLI28, ['images', ...bad]);
      const theirs = await refDocker(['images', ...bad]);
      assert.deepEqual([mine.code, mine.stderr], [theirs.code, theirs.stderr], bad.join(' '));
    }
  });

  test('tag and rmi: same outputs and conflict messages as the reference', async () => {
    const script: string[][] = [
      ['tag', 'multi:v1', 'x/one:1'],
      ['tag', 'multi:v1', 'x/two'],
      ['rmi', 'nosuch'],
      ['rmi', 'multi'],
      ['tag', 'nosuch', 'a:b'],
      ['tag', 'multi:v1', 'UPPER:1'],
      ['rmi', 'labelled:1', 'x/two'],
      ['rmi', 'x/one:1'],
      ['tag', 'bbase:1', 'keep:1'],
      ['rmi', 'keep:1'],
    ];
    for (const [name, cli] of CLIS) {
      for (const s of script) {
        const mine = await b.docker(cli, s);
        const theirs = await refDocker(s, undefined, cli);
        assert.deepEqual(
          [mine.code, mine.stdout, mine.stderr.replace(/ \(500\)/, '')],
          [theirs.code, theirs.stdout, theirs.stderr],
          `${name}: docker ${s.join(' ')}`,
        );
      }
      // rmi by ID of an image with several tags: the conflict dockerd gives
      const id = (await b.docker(cli, ['images', '-q', 'multi:v1'])).stdout.trim();
      await b.docker(cli, ['tag', 'multi:v1', 'multi:alias']);
      await refDocker(['tag', 'multi:v1', 'multi:alias']);
      const mine = await b.docker(cli, ['rmi', id]);
      const theirs = await refDocker(['rmi', id], undefined, cli);
      assert.deepEqual([mine.code, mine.stderr], [theirs.code, theirs.stderr], `${name} rmi ${id}`);
      await b.docker(cli, ['rmi', 'multi:alias']);
      await refDocker(['rmi', 'multi:alias']);
      // put labelled:1 back for the next CLI
      await b.docker(cli, ['load', '-i', saveTar]);
      await refDocker(['load', '-i', saveTar]);
    }
  });

  test('import (stdin, changes, message) gives the reference config; prune reclaims the same', async () => {
    for (const [name, cli] of CLIS) {
      const args = [
        'import',
        '-c',
        'ENV A=b',
        '-c',
        'CMD ["/bin/sh"]',
        '-c',
        'EXPOSE 80',
        '-m',
        'hello',
        '-',
        `imp:${name}`,
      ];
      const tar = fs.readFileSync(baseTar);
      const mine = await b.docker(cli, args, { input: tar });
      const theirs = await refDocker(args, tar);
      assert.equal(mine.code, 0, mine.stderr);
      assert.match(mine.stdout.trim(), /^sha256:[a-f0-9]{64}$/);
      const f = '{{json .Config}}|{{.Comment}}|{{json .RootFS}}|{{.Size}}|{{json .RepoTags}}';
      assert.equal(
        (await b.docker(cli, ['inspect', '--format', f, `imp:${name}`])).stdout,
        (await refDocker(['inspect', '--format', f, `imp:${name}`], undefined, cli)).stdout,
        name,
      );
      assert.equal(theirs.code, 0);
      const h = ['history', '--format', '{{.CreatedBy}}|{{.Size}}|{{.Comment}}', `imp:${name}`];
      assert.equal((await b.docker(cli, h)).stdout, (await refDocker(h, undefined, cli)).stdout);
      const bad = ['import', '-c', 'RUN true', '-', 'bad:1'];
      const bm = await b.docker(cli, bad, { input: tar });
      const bt = await refDocker(bad, tar, cli);
      assert.deepEqual([bm.code, bm.stderr], [bt.code, bt.stderr]);
    }
    // a re-import under the same tag leaves the previous one dangling; prune removes it
    for (const d of [null, 'ref'] as const) {
      const tar = fs.readFileSync(baseTar);
      const args = ['import', '-', 'imp:28'];
      if (d) await refDocker(args, tar);
      else await b.docker(CLI28, args, { input: tar });
    }
    const dang = ['images', '-q', '--filter', 'dangling=true'];
    assert.equal((await b.docker(CLI28, dang)).stdout.trim().split('\n').length, 1);
    const mine = await b.docker(CLI20, ['image', 'prune', '-f']);
    const theirs = await refDocker(['image', 'prune', '-f']);
    const lines = (s: string) =>
      s
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('Total') || l.startsWith('Deleted Images'));
    assert.deepEqual(lines(mine.stdout), lines(theirs.stdout));
    assert.equal((await b.docker(CLI28, dang)).stdout.trim(), '');
  });

  test('system df matches the reference', async () => {
    for (const [name, cli] of CLIS) {
      const f = ['system', 'df', '--format', '{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}'];
      assert.equal((await b.docker(cli, f)).stdout, (await refDocker(f, undefined, cli)).stdout, name);
    }
  });

  test('save: berthd save loads into the reference with the same IDs', async () => {
    for (const [name, cli] of CLIS) {
      const out = path.join(work, `b-${name}.tar`);
      const s = await b.docker(cli, ['save', '-o', out, 'multi:v1', 'bbase:1']);
      assert.equal(s.code, 0, s.stderr);
      await refDocker(['rmi', 'multi:v1', 'bbase:1']);
      const l = await refDocker(['load', '-i', out]);
      assert.equal(l.code, 0, l.stderr);
      const f = ['inspect', '--format', '{{.Id}} {{json .RepoTags}} {{.Size}}', 'multi:v1', 'bbase:1'];
      assert.equal((await refDocker(f)).stdout, (await b.docker(cli, f)).stdout);
    }
    const missing = await b.docker(CLI28, ['save', 'nosuch:1']);
    const theirs = await refDocker(['save', 'nosuch:1']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, theirs.stderr);
  });

  test('events: tag/untag/delete/load/save/import stream with filters', async () => {
    const since = (Date.now() / 1000).toFixed(3);
    const watchUntil = Math.floor(Date.now() / 1000) + 5;
    const watch = b.docker(
      CLI28,
      [
        'events',
        '--since',
        since,
        '--until',
        String(watchUntil),
        '--filter',
        'type=image',
        '--format',
        '{{.Type}} {{.Action}}',
      ],
      {
        timeoutMs: 15_000,
      },
    );
    await new Promise((r) => setTimeout(r, 500));
    await b.docker(CLI28, ['tag', 'bbase:1', 'ev:1']);
    await b.docker(CLI28, ['rmi', 'ev:1']);
    const tar = fs.readFileSync(baseTar);
    await b.docker(CLI28, ['import', '-', 'evimp:1'], { input: tar });
    await b.docker(CLI28, ['rmi', 'evimp:1']);
    const until = Math.floor(Date.now() / 1000) + 1;
    const past = await b.docker(CLI20, [
      'events',
      '--since',
      String(since),
      '--until',
      String(until),
      '--filter',
      'event=tag',
      '--format',
      '{{.Action}} {{.Actor.Attributes.name}}',
    ]);
    assert.deepEqual(past.stdout.trim().split('\n'), ['tag ev:1', 'tag evimp:1']);
    const byImage = await b.docker(CLI28, [
      'events',
      '--since',
      String(since),
      '--until',
      String(until),
      '--filter',
      'image=ev:1',
      '--format',
      '{{.Action}}',
    ]);
    assert.deepEqual(byImage.stdout.trim().split('\n'), ['tag']);
    const live = await watch;
    assert.equal(live.code, 0, live.stderr);
    assert.deepEqual(live.stdout.trim().split('\n'), [
      'image tag',
      'image untag',
      'image tag',
      'image import',
      'image untag',
      'image delete',
    ]);
  });

  test('bad input over HTTP: statuses and messages as dockerd', async () => {
    const cases: [string, string][] = [
      ['GET', '/v1.41/images/nosuch/json'],
      ['GET', '/v1.41/images/json?filters=%7B%22foo%22%3A%5B%22a%22%5D%7D'],
      ['GET', '/v1.99/version'],
      ['GET', '/nope'],
      ['DELETE', '/v1.41/images/nosuch'],
      ['POST', '/v1.41/images/prune?filters=%7B%22foo%22%3A%5B%22a%22%5D%7D'],
      ['GET', '/v1.41/images/nosuch/history'],
      ['POST', '/v1.41/images/nosuch/tag?repo=x'],
      ['GET', '/v1.41/images/nosuch/get'],
    ];
    for (const [m, p] of cases) {
      const mine = await b.request(m, p);
      const theirs = await httpUnix(ref.socket, m, p);
      assert.deepEqual([mine.status, mine.body.trim()], [theirs.status, theirs.body.trim()], `${m} ${p}`);
    }
    // where dockerd answers 500 for a client mistake, berthd answers 400 with the same message
    for (const p of ['/v1.41/images/json?filters=%7Bbad', '/v1.41/images/json?filters=%5B1%5D']) {
      const mine = await b.request('GET', p);
      assert.equal(mine.status, 400, p);
    }
    const up = await b.request('POST', '/v1.41/images/bbase:1/tag?repo=UPPER');
    const upRef = await httpUnix(ref.socket, 'POST', '/v1.41/images/bbase:1/tag?repo=UPPER');
    assert.equal(up.status, 400);
    assert.equal(up.body, upRef.body);
    const ping = await b.request('HEAD', '/_ping');
    assert.equal(ping.status, 200);
    assert.equal(ping.headers['api-version'], '1.41');
    assert.equal(ping.headers.ostype, 'linux');
    assert.equal(ping.headers.pragma, 'no-cache');
    const auth = await b.request('POST', '/v1.41/auth', '{bad json');
    assert.equal(auth.status, 400);
  });
});
