// `npm run bench`: every benchmark, berth and the reference side by side, one
// after another (never in parallel: they would measure each other). Each one is
// its own script so it can also be run alone:
//   node dist/bench/run.js [name…]     names: store api pull registry containers archive
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineNote } from './util.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BENCHES: Record<string, { script: string; args: string[]; what: string }> = {
  store: { script: 'store.js', args: ['all', '3'], what: 'layer register and docker load (issue 2)' },
  api: { script: 'api.js', args: ['500', '60'], what: 'GET /images/json with 500 images, idle memory (issue 4)' },
  pull: { script: 'pull.js', args: ['200', '--runs', '3'], what: 'cold pull and push of a 5-layer image (issue 4)' },
  registry: { script: 'registry.js', args: ['8'], what: 'registry vs docker-registry 2.8 with wrk (issue 3)' },
  containers: { script: 'containers.js', args: [], what: 'docker run, ps, logs (issue 5)' },
  archive: { script: 'archive-apply.js', args: ['200', '3'], what: 'applyLayer alone vs tar -x + sha256sum' },
};

const wanted = process.argv.slice(2);
const names = wanted.length ? wanted : Object.keys(BENCHES).filter((n) => n !== 'archive');
console.log(`# berth benchmarks — ${new Date().toISOString()}\n# ${machineNote()}`);
let failed = 0;
for (const name of names) {
  const b = BENCHES[name];
  if (!b) {
    console.error(`unknown benchmark ${JSON.stringify(name)}; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exitCode = 2;
    continue;
  }
  const script = path.join(here, b.script);
  console.log(`\n## ${name}: ${b.what}`);
  if (!fs.existsSync(script)) {
    console.log('(not built yet)');
    continue;
  }
  const r = spawnSync(process.execPath, [script, ...b.args], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.log(`(${name} exited with status ${r.status})`);
  }
}
if (failed) process.exitCode = 1;
