// Child process of the crash-safety test: opens a layer store and mutates it
// forever (register stacked layers, staged pairs, duplicates, releases, RW layers with
// init layers and mounts) until the parent SIGKILLs it.
//   node crash-child.js <data-root> <seed>
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Digest } from '../oci/index.js';
import { LayerStore } from './layer-store.js';
import { randomTar } from './tar-fixture.js';

const [dataRoot, seedText] = process.argv.slice(2);
if (!dataRoot) throw new Error('usage: crash-child <data-root> <seed>');
let seed = Number(seedText ?? '1') || 1;
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed % n;
};

const store = await LayerStore.open(dataRoot);
// Like the image store at startup: hold a reference on every layer so the loop can let them go.
const held: Digest[] = store.list().map((l) => store.get(l.chainId).chainId);
const recentTars: Array<{ tar: Buffer; parent: Digest | undefined }> = [];
let ctr = 0;
process.stdout.write('ready\n');

for (;;) {
  process.stdout.write('.');
  const op = rand(10);
  if ((op < 4 && held.length < 24) || held.length === 0) {
    // new layer on a random held layer (or a base layer)
    const parent = held.length && rand(3) ? held[rand(held.length)] : undefined;
    const tar = randomTar(1 + rand(4));
    const l = await store.register(Readable.from([tar]), parent && store.has(parent) ? parent : undefined);
    held.push(l.chainId);
    recentTars.push({ tar, parent: l.parent });
    if (recentTars.length > 8) recentTars.shift();
  } else if (op < 5 && recentTars.length) {
    // the same content again (dedupe path)
    const r = recentTars[rand(recentTars.length)] as { tar: Buffer; parent: Digest | undefined };
    if (r.parent === undefined || store.has(r.parent)) {
      const l = await store.register(Readable.from([r.tar]), r.parent);
      held.push(l.chainId);
    }
  } else if (op < 6 && held.length < 24) {
    // staged: extract two layers at once, then attach them as a chain (the pull/load path)
    const parent = held.length && rand(2) ? held[rand(held.length)] : undefined;
    const [a, b] = await Promise.all([
      store.stage(Readable.from([randomTar(1 + rand(3))])),
      store.stage(Readable.from([randomTar(1 + rand(3))])),
    ]);
    const la = await store.commitStaged(a!, parent && store.has(parent) ? parent : undefined);
    const lb = await store.commitStaged(b!, la.chainId);
    held.push(la.chainId, lb.chainId);
  } else if (op < 8) {
    const i = rand(held.length);
    const [id] = held.splice(i, 1);
    if (id) await store.release(id);
  } else {
    // a container: init layer, mount, write, unmount, maybe remove
    const parent = held.length ? held[rand(held.length)] : undefined;
    const name = `${process.pid.toString(16)}${(ctr++).toString(16)}`.padStart(64, '0');
    const rw = await store.createRWLayer(name, parent, {
      initFunc: async (rootDir) => {
        fs.mkdirSync(path.join(rootDir, 'etc'), { recursive: true });
        fs.writeFileSync(path.join(rootDir, 'etc', 'hosts'), '127.0.0.1 localhost\n');
      },
    });
    const rootfs = await rw.mount();
    fs.writeFileSync(path.join(rootfs, 'written'), 'x');
    await rw.unmount();
    if (rand(2) || store.listRWLayers().length > 4) {
      for (const m of store.listRWLayers()) {
        if (rand(2)) await store.releaseRWLayer(m.name);
      }
    }
  }
}
