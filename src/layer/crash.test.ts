// Crash safety: a child process mutates a layer store and is SIGKILLed at
// random points, many times. After every kill the store must open, check()
// must find nothing wrong, and no leftovers (write sets, -removing entries,
// orphan driver dirs, temp files) may survive the open.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { mountsUnder } from '../graphdriver/overlay2/fsinfo.js';
import { LayerStore } from './index.js';

const here = path.dirname(fileURLToPath(import.meta.url)); // <pkg>/dist/src/layer
const pkg = path.resolve(here, '..', '..', '..');
// The child runs from a snapshot of dist/: other engineers rebuild dist/ while tests run,
// and a child starting on a half-written file would fail for reasons unrelated to us.
const snap = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-crash-dist-'));
fs.cpSync(path.join(pkg, 'dist', 'src'), path.join(snap, 'dist', 'src'), { recursive: true });
fs.copyFileSync(path.join(pkg, 'package.json'), path.join(snap, 'package.json'));
fs.symlinkSync(path.join(pkg, 'build'), path.join(snap, 'build'));
fs.symlinkSync(path.join(pkg, 'node_modules'), path.join(snap, 'node_modules'));
const CHILD = path.join(snap, 'dist', 'src', 'layer', 'crash-child.js');
const KILLS = 40;
const BUDGET_MS = 45_000;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-crash-'));
after(async () => {
  for (const mp of mountsUnder(root)) {
    try {
      (await import('../native/index.js')).native.umount2(mp, 2);
    } catch {}
  }
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(snap, { recursive: true, force: true });
});

/** `fromSpawn`: time the kill from process start, so some kills land inside open()'s own sweep. */
function runAndKill(
  seed: number,
  delayMs: number,
  fromSpawn: boolean,
): Promise<{ ops: number; stderr: string; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, root, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let ops = 0;
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    if (fromSpawn) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    child.stdout.on('data', (b: Buffer) => {
      const s = b.toString();
      if (s.includes('ready') && !timer) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
      ops += s.split('.').length - 1;
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ ops, stderr, signal });
    });
  });
}

function leftovers(): string[] {
  const out: string[] = [];
  const layerdb = path.join(root, 'image', 'overlay2', 'layerdb');
  const home = path.join(root, 'overlay2');
  for (const n of fs.readdirSync(path.join(layerdb, 'tmp'))) out.push(`layerdb/tmp/${n}`);
  for (const sub of ['sha256', 'mounts']) {
    const dir = path.join(layerdb, sub);
    if (!fs.existsSync(dir)) continue;
    for (const n of fs.readdirSync(dir)) {
      if (n.endsWith('-removing') || n.startsWith('.tmp-')) out.push(`layerdb/${sub}/${n}`);
      for (const f of fs.readdirSync(path.join(dir, n)))
        if (f.startsWith('.tmp-')) out.push(`layerdb/${sub}/${n}/${f}`);
    }
  }
  for (const n of fs.readdirSync(home)) {
    if (n.endsWith('-removing') || n.startsWith('.tmp-')) out.push(`overlay2/${n}`);
    else if (n !== 'l') {
      for (const f of fs.readdirSync(path.join(home, n))) if (f.startsWith('.tmp-')) out.push(`overlay2/${n}/${f}`);
    }
  }
  for (const n of fs.readdirSync(path.join(home, 'l'))) {
    if (!fs.existsSync(path.join(home, 'l', n))) out.push(`overlay2/l/${n} (dangling)`);
  }
  return out;
}

test(`layer store survives ${KILLS} SIGKILLs at random points`, { timeout: 58_000 }, async () => {
  const started = Date.now();
  let kills = 0;
  let totalOps = 0;
  let maxLayers = 0;
  let maxMounts = 0;
  for (let i = 0; i < KILLS && Date.now() - started < BUDGET_MS; i++) {
    const fromSpawn = i % 4 === 3;
    const delay = fromSpawn ? 80 + Math.floor(Math.random() * 200) : 10 + Math.floor(Math.random() * 300);
    const r = await runAndKill(1000 + i, delay, fromSpawn);
    assert.equal(r.signal, 'SIGKILL', `child died on its own:\n${r.stderr}`);
    kills++;
    totalOps += r.ops;
    const store = await LayerStore.open(root);
    try {
      const problems = await store.check();
      assert.deepEqual(problems, [], `after kill ${i + 1} (delay ${delay} ms)`);
      assert.deepEqual(leftovers(), [], `after kill ${i + 1}`);
      maxLayers = Math.max(maxLayers, store.list().length);
      maxMounts = Math.max(maxMounts, store.listRWLayers().length);
    } finally {
      await store.close();
    }
  }
  console.log(
    `crash test: ${kills} kills, ${totalOps} operations started, up to ${maxLayers} layers and ${maxMounts} RW layers, ${Date.now() - started} ms`,
  );
  assert.ok(kills >= 30, `only ${kills} kills fit in the time budget`);
  assert.ok(maxLayers > 0);
});
