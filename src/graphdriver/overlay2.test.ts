import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { native } from '../native/index.js';
import { LINK_ID_RE, MAX_DEPTH, Overlay2Driver, soleSourceIn } from './index.js';
import { mountsUnder } from './overlay2/fsinfo.js';

const ids = {
  base: 'a'.repeat(64),
  mid: 'b'.repeat(64),
  top: 'c'.repeat(64),
};

let root: string;
let d: Overlay2Driver;

function read(p: string): string {
  return fs.readFileSync(p, 'utf8');
}
function mode(p: string): number {
  return fs.statSync(p).mode & 0o7777;
}
function isMounted(p: string): boolean {
  return mountsUnder(p).includes(p);
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ovl-'));
  d = await Overlay2Driver.init(path.join(root, 'overlay2'));
});
after(async () => {
  await d.cleanup();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('overlay2 layout', () => {
  test('create writes link, l/ symlink, lower chain, work and committed like moby', async () => {
    await d.create(ids.base);
    await d.create(ids.mid, ids.base);
    await d.create(ids.top, ids.mid);
    const home = d.home;
    assert.equal(mode(home), 0o710);
    assert.equal(mode(path.join(home, 'l')), 0o700);
    const links: Record<string, string> = {};
    for (const [k, id] of Object.entries(ids)) {
      const dir = path.join(home, id);
      assert.equal(mode(dir), 0o710, `${k} dir mode`);
      assert.equal(mode(path.join(dir, 'diff')), 0o755);
      const link = read(path.join(dir, 'link'));
      assert.match(link, LINK_ID_RE, 'link is 26 upper-case base32 chars without newline');
      assert.equal(mode(path.join(dir, 'link')), 0o644);
      assert.equal(fs.readlinkSync(path.join(home, 'l', link)), `../${id}/diff`);
      links[k] = link;
    }
    assert.ok(!fs.existsSync(path.join(home, ids.base, 'lower')), 'base layer has no lower');
    assert.ok(!fs.existsSync(path.join(home, ids.base, 'work')), 'base layer has no work dir');
    assert.equal(read(path.join(home, ids.mid, 'lower')), `l/${links.base}`);
    assert.equal(read(path.join(home, ids.top, 'lower')), `l/${links.mid}:l/${links.base}`);
    assert.equal(mode(path.join(home, ids.top, 'work')), 0o700);
    // committed marks a layer that got a child
    assert.equal(read(path.join(home, ids.base, 'committed')), '');
    assert.equal(mode(path.join(home, ids.base, 'committed')), 0o600);
    assert.ok(fs.existsSync(path.join(home, ids.mid, 'committed')));
    assert.ok(!fs.existsSync(path.join(home, ids.top, 'committed')));
    // no temp files left anywhere
    const all = fs.readdirSync(home, { recursive: true }) as string[];
    assert.deepEqual(
      all.filter((n) => n.includes('.tmp-') || n.endsWith('-removing')),
      [],
    );
    await assert.rejects(d.create(ids.base), /already exists/);
    await assert.rejects(d.create('d'.repeat(64), 'e'.repeat(64)), /does not exist/);
    await assert.rejects(d.create('../escape'), /invalid layer id/);
  });

  test('metadata() gives inspect GraphDriver.Data', async () => {
    const md = await d.metadata(ids.top);
    const home = d.home;
    assert.deepEqual(md, {
      LowerDir: `${home}/${ids.mid}/diff:${home}/${ids.base}/diff`,
      MergedDir: `${home}/${ids.top}/merged`,
      UpperDir: `${home}/${ids.top}/diff`,
      WorkDir: `${home}/${ids.top}/work`,
    });
    const base = await d.metadata(ids.base);
    assert.equal(base.LowerDir, undefined);
    assert.equal(base.UpperDir, `${home}/${ids.base}/diff`);
  });

  test('status() rows', () => {
    assert.deepEqual(
      d.status().map((r) => r[0]),
      ['Backing Filesystem', 'Supports d_type', 'Native Overlay Diff', 'userxattr'],
    );
    assert.equal(d.status()[0]?.[1], 'extfs');
    assert.equal(d.status()[1]?.[1], 'true');
  });
});

describe('overlay2 mounts', () => {
  const rw = 'f'.repeat(64);
  test('3-layer stack: merged view, whiteouts and opaque dirs hide lower files', async () => {
    const base = d.diffPath(ids.base);
    const mid = d.diffPath(ids.mid);
    const top = d.diffPath(ids.top);
    fs.writeFileSync(path.join(base, 'a'), 'A-base');
    fs.writeFileSync(path.join(base, 'gone'), 'deleted in mid');
    fs.mkdirSync(path.join(base, 'opq'));
    fs.writeFileSync(path.join(base, 'opq', 'old'), 'hidden by opaque');
    fs.writeFileSync(path.join(mid, 'a'), 'A-mid');
    native.mknod(path.join(mid, 'gone'), fs.constants.S_IFCHR | 0o000, 0, 0); // overlay whiteout
    fs.mkdirSync(path.join(mid, 'opq'));
    native.lsetxattr(path.join(mid, 'opq'), 'trusted.overlay.opaque', Buffer.from('y'));
    fs.writeFileSync(path.join(mid, 'opq', 'new'), 'visible');
    fs.writeFileSync(path.join(top, 'c'), 'C-top');

    await d.createReadWrite(rw, ids.top);
    const merged = await d.get(rw);
    assert.equal(merged, path.join(d.home, rw, 'merged'));
    assert.ok(isMounted(merged));
    assert.deepEqual(fs.readdirSync(merged).sort(), ['a', 'c', 'opq']);
    assert.equal(read(path.join(merged, 'a')), 'A-mid');
    assert.deepEqual(fs.readdirSync(path.join(merged, 'opq')), ['new']);
    // writes land in the rw layer's diff dir, lower layers untouched
    fs.writeFileSync(path.join(merged, 'written'), 'w');
    fs.rmSync(path.join(merged, 'c'));
    assert.equal(read(path.join(d.diffPath(rw), 'written')), 'w');
    assert.ok(fs.existsSync(path.join(top, 'c')));
    const wh = fs.lstatSync(path.join(d.diffPath(rw), 'c'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'delete in merged leaves a 0:0 whiteout in upper');
  });

  test('get/put are refcounted; last put unmounts and removes merged/', async () => {
    const merged = path.join(d.home, rw, 'merged');
    assert.equal(await d.get(rw), merged); // second reference
    assert.equal(d.mountCount(rw), 2);
    assert.equal(mountsUnder(merged).length, 1, 'mounted once');
    await d.put(rw);
    assert.ok(isMounted(merged), 'still mounted with one reference left');
    await d.put(rw);
    assert.ok(!isMounted(merged));
    assert.ok(!fs.existsSync(merged));
    await d.put(rw); // extra put is harmless
    // a base layer has nothing to mount: get returns its diff dir
    assert.equal(await d.get(ids.base), d.diffPath(ids.base));
    await d.put(ids.base);
  });

  test('committed layers mount read-only (lowerdir only)', async () => {
    const merged = await d.get(ids.mid);
    assert.equal(read(path.join(merged, 'a')), 'A-mid');
    assert.throws(() => fs.writeFileSync(path.join(merged, 'x'), 'x'), /EROFS|read-only/i);
    await d.put(ids.mid);
  });

  test('remove unmounts, deletes the dir and its l/ link, leaves no -removing', async () => {
    await d.get(rw);
    const link = read(path.join(d.home, rw, 'link'));
    await d.remove(rw);
    assert.ok(!d.exists(rw));
    assert.ok(!fs.existsSync(path.join(d.home, 'l', link)));
    assert.deepEqual(
      fs.readdirSync(d.home).filter((n) => n.endsWith('-removing') || n.startsWith('.tmp-')),
      [],
    );
    assert.deepEqual(mountsUnder(d.home), []);
    await d.remove(rw); // idempotent
    assert.deepEqual((await d.list()).sort(), [ids.base, ids.mid, ids.top]);
  });
});

describe('overlay2 depth and long mount data', () => {
  test(`mounts a RW layer over a ${MAX_DEPTH}-layer chain (relative lowerdirs past one page) and refuses more`, async () => {
    const chain: string[] = [];
    let parent: string | undefined;
    for (let i = 0; i < MAX_DEPTH; i++) {
      const id = `deep${String(i).padStart(4, '0')}`;
      await d.create(id, parent);
      fs.writeFileSync(path.join(d.diffPath(id), `f${i}`), String(i));
      chain.push(id);
      parent = id;
    }
    // the 128th layer has 127 lowers; a RW layer on it has 128
    await d.createReadWrite('deeprw', parent);
    assert.equal(read(path.join(d.home, 'deeprw', 'lower')).split(':').length, MAX_DEPTH);
    await assert.rejects(d.createReadWrite('toodeep', 'deeprw'), /max depth exceeded/);
    const cwd = process.cwd();
    const merged = await d.get('deeprw');
    assert.equal(process.cwd(), cwd, 'cwd restored after relative mount');
    assert.equal(fs.readdirSync(merged).length, MAX_DEPTH);
    assert.equal(read(path.join(merged, 'f0')), '0');
    await d.put('deeprw');
    for (const id of ['deeprw', ...chain.reverse()]) await d.remove(id);
  });
});

describe('overlay2 crash leftovers', () => {
  test('init sweeps .tmp- build dirs, -removing dirs and dangling l/ links', async () => {
    const home = d.home;
    fs.mkdirSync(path.join(home, `.tmp-create-${'9'.repeat(64)}-abcd`, 'diff'), { recursive: true });
    fs.mkdirSync(path.join(home, `${'8'.repeat(64)}-1234-removing`, 'diff'), { recursive: true });
    fs.symlinkSync(`../${'9'.repeat(64)}/diff`, path.join(home, 'l', 'AAAAAAAAAAAAAAAAAAAAAAAAAA'));
    const d2 = await Overlay2Driver.init(home);
    assert.deepEqual(fs.readdirSync(home).sort(), [ids.base, ids.mid, ids.top, 'l'].sort());
    assert.equal(fs.readdirSync(path.join(home, 'l')).length, 3);
    assert.equal(d2.status()[0]?.[1], 'extfs');
  });
});

describe('soleSourceIn: reading the merged view of a path without mounting', () => {
  // Each case: diff dirs (uppermost first) built from a spec, a path, the expected
  // answer; the answer is checked against a real read-only overlay mount of the dirs.
  type Spec = Record<string, 'dir' | 'opaque' | 'whiteout' | string | { link: string }>;
  const build = (base: string, specs: Spec[]): string[] =>
    specs.map((spec, i) => {
      const dir = path.join(base, `l${i}`);
      fs.mkdirSync(dir, { recursive: true });
      for (const [rel, what] of Object.entries(spec)) {
        const p = path.join(dir, rel);
        fs.mkdirSync(path.dirname(p), { recursive: true });
        if (what === 'dir' || what === 'opaque') {
          fs.mkdirSync(p, { recursive: true });
          if (what === 'opaque') native.lsetxattr(p, 'trusted.overlay.opaque', Buffer.from('y'));
        } else if (what === 'whiteout') native.mknod(p, 0o020000 | 0o600, 0, 0);
        else if (typeof what === 'object') fs.symlinkSync(what.link, p);
        else fs.writeFileSync(p, what);
      }
      return dir;
    });
  const listing = (dir: string): string[] => {
    const out: string[] = [];
    const walk = (rel: string) => {
      for (const n of fs.readdirSync(path.join(dir, rel)).sort()) {
        const r = path.join(rel, n);
        // a whiteout is not visible (overlayfs may still list one in a directory
        // of a single layer, then fail its lookup)
        const st = fs.lstatSync(path.join(dir, r), { throwIfNoEntry: false });
        if (!st || (st.isCharacterDevice() && st.rdev === 0)) continue;
        out.push(st.isDirectory() ? `${r}/` : `${r}=${fs.readFileSync(path.join(dir, r), 'utf8')}`);
        if (st.isDirectory()) walk(r);
      }
    };
    walk('');
    return out;
  };
  const cases: Array<[string, Spec[], string, 'absent' | number | null]> = [
    ['nowhere', [{ etc: 'dir' }, { bin: 'dir' }], '/data', 'absent'],
    ['parents only', [{ var: 'dir' }, { 'var/lib': 'dir' }], '/var/lib/db', 'absent'],
    ['one layer', [{ x: 'dir' }, { 'data/a': '1', 'data/sub/b': '2' }], '/data', 1],
    ['two layers merge', [{ 'data/a': 'top' }, { 'data/b': 'low' }], '/data', null],
    ['whiteout above', [{ data: 'whiteout' }, { 'data/a': '1' }], '/data', null],
    ['opaque parent hides below', [{ var: 'opaque' }, { 'var/lib/db/x': '1' }], '/var/lib/db', 'absent'],
    ['opaque holder', [{ data: 'opaque', 'data/n': 'new' }, { 'data/old': 'o' }], '/data', 0],
    ['symlink on the way', [{ var: { link: 'usr/var' } }, { 'usr/var/db/x': '1' }], '/var/db', null],
    ['a file there', [{ data: 'file' }, { x: 'dir' }], '/data', null],
    ['whiteout inside the holder', [{ 'data/gone': 'whiteout', 'data/k': 'k' }, { y: 'dir' }], '/data', 0],
  ];
  for (const [name, specs, rel, want] of cases) {
    test(name, () => {
      const base = fs.mkdtempSync(path.join(root, 'sole-'));
      const dirs = build(base, specs);
      const got = soleSourceIn(dirs, rel);
      if (want === null) assert.equal(got, null);
      else if (want === 'absent') assert.deepEqual(got, { kind: 'absent' });
      else assert.deepEqual(got, { kind: 'dir', path: path.join(dirs[want]!, rel) });
      // the truth, from overlayfs itself
      const merged = path.join(base, 'merged');
      fs.mkdirSync(merged);
      native.mount('overlay', merged, 'overlay', 1 /* MS_RDONLY */, `lowerdir=${dirs.join(':')}`);
      try {
        const m = path.join(merged, rel);
        if (got?.kind === 'absent') assert.ok(!fs.existsSync(m), `${rel} exists in the merged view`);
        if (got?.kind === 'dir') assert.deepEqual(listing(got.path), listing(m));
      } finally {
        native.umount2(merged, 2);
      }
    });
  }
});
