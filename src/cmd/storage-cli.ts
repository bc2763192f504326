// `berth storage`: load/save/ls/inspect/rmi/check on a data-root without a
// daemon. Refuses to run while a berthd holds that root's pidfile.
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULTS } from '../config/index.js';
import { Daemon } from '../daemon/index.js';
import { acquirePidfile } from '../fsutil/index.js';
import { Logger, nullLogger } from '../log/index.js';
import { familiarString } from '../oci/index.js';

const USAGE = `Usage: berth storage COMMAND [OPTIONS]

Work on a data-root while no berthd runs on it.

Commands:
  ls                          list images (like docker images)
  inspect IMAGE...            print image details as JSON
  load -i FILE                load a docker save / OCI archive ("-" for stdin)
  save -o FILE IMAGE...       write a docker save archive ("-" for stdout)
  rmi [-f] [--no-prune] IMAGE...  remove images
  check [--verify-content]    verify layers, images and references

Options (every command):
  --data-root DIR             data-root (default ${DEFAULTS.dataRoot})
  --pidfile FILE              pidfile of the daemon that owns the root (default ${DEFAULTS.pidfile})
  --debug                     log at debug level
`;

interface Opts {
  dataRoot: string;
  pidfile: string;
  debug: boolean;
  input?: string;
  output?: string;
  force: boolean;
  noPrune: boolean;
  verify: boolean;
  args: string[];
}

function parse(argv: string[]): Opts {
  const o: Opts = {
    dataRoot: DEFAULTS.dataRoot,
    pidfile: DEFAULTS.pidfile,
    debug: false,
    force: false,
    noPrune: false,
    verify: false,
    args: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [name, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const val = () => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new Error(`flag needs an argument: ${name}`);
      return v;
    };
    if (name === '--data-root') o.dataRoot = val();
    else if (name === '--pidfile') o.pidfile = val();
    else if (name === '-i' || name === '--input') o.input = val();
    else if (name === '-o' || name === '--output') o.output = val();
    else if (name === '-f' || name === '--force') o.force = true;
    else if (name === '--no-prune') o.noPrune = true;
    else if (name === '--verify-content') o.verify = true;
    else if (name === '--debug' || name === '-D') o.debug = true;
    else if (name.startsWith('-') && name !== '-') throw new Error(`unknown flag: ${name}`);
    else o.args.push(a);
  }
  return o;
}

function ago(created: number): string {
  const s = Math.max(0, Date.now() / 1000 - created);
  if (s < 60) return `${Math.floor(s)} seconds ago`;
  if (s < 3600) return `${Math.floor(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} hours ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toPrecision(3).replace(/\.?0+$/, '')}${units[i]}`;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 1;
  }
  let o: Opts;
  try {
    o = parse(rest);
  } catch (e) {
    process.stderr.write(`berth storage: ${(e as Error).message}\n`);
    return 2;
  }
  if (!['ls', 'inspect', 'load', 'save', 'rmi', 'check'].includes(cmd)) {
    process.stderr.write(`berth storage: unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
    return 2;
  }
  // refuse while a daemon owns the root: hold its pidfile ourselves for the duration
  let release: () => void;
  try {
    fs.mkdirSync(path.dirname(o.pidfile), { recursive: true });
    release = acquirePidfile(o.pidfile);
  } catch (e) {
    process.stderr.write(
      `berth storage: ${(e as Error).message} (a daemon may be using ${o.dataRoot}; stop it first)\n`,
    );
    return 1;
  }
  const log = o.debug ? new Logger('debug') : nullLogger;
  const cfg = { ...DEFAULTS, dataRoot: o.dataRoot, execRoot: path.join(o.dataRoot, '.berth-storage-exec') };
  let d: Daemon | undefined;
  try {
    if (cmd !== 'load' && !fs.existsSync(o.dataRoot)) throw new Error(`data-root ${o.dataRoot} does not exist`);
    try {
      d = await Daemon.open({ config: () => cfg, logger: log });
    } catch (e) {
      if ((e as Error).message.startsWith('pid file found')) {
        throw new Error(`${o.dataRoot} is in use by another process (${(e as Error).message}); stop berthd first`);
      }
      throw e;
    }
    switch (cmd) {
      case 'ls': {
        const rows = d.images.list({ all: o.args.includes('-a') });
        const lines = [['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']];
        for (const s of rows) {
          for (const t of s.RepoTags ?? []) {
            const i = t.lastIndexOf(':');
            lines.push([t.slice(0, i), t.slice(i + 1), s.Id.slice(7, 19), ago(s.Created), humanSize(s.Size)]);
          }
        }
        const w = lines[0]!.map((_, c) => Math.max(...lines.map((l) => l[c]!.length)));
        for (const l of lines)
          process.stdout.write(
            `${l
              .map((x, c) => x.padEnd(w[c]! + 3))
              .join('')
              .trimEnd()}\n`,
          );
        return 0;
      }
      case 'inspect': {
        if (o.args.length === 0) throw new Error('inspect needs at least one IMAGE');
        const out = [];
        for (const n of o.args) out.push(await d.images.inspect(n));
        process.stdout.write(`${JSON.stringify(out, null, 4)}\n`);
        return 0;
      }
      case 'load': {
        if (!o.input) throw new Error('load needs -i FILE');
        const input = o.input === '-' ? process.stdin : fs.createReadStream(o.input);
        const msgs: string[] = [];
        await d.images.load(input, {
          status: () => {},
          stream: (t) => msgs.push(t.trimEnd()),
          aux: () => {},
          error: (m) => msgs.push(m),
          closed: false,
        });
        for (const m of msgs) process.stdout.write(`${m}\n`);
        return 0;
      }
      case 'save': {
        if (!o.output) throw new Error('save needs -o FILE');
        d.images.checkSave(o.args);
        const out = o.output === '-' ? process.stdout : fs.createWriteStream(`${o.output}.tmp`);
        await d.images.save(o.args, out);
        if (o.output !== '-') {
          await new Promise<void>((r, j) => out.end((e?: Error) => (e ? j(e) : r())));
          fs.renameSync(`${o.output}.tmp`, o.output);
        }
        return 0;
      }
      case 'rmi': {
        if (o.args.length === 0) throw new Error('rmi needs at least one IMAGE');
        let failed = false;
        for (const n of o.args) {
          try {
            for (const r of await d.images.delete(n, { force: o.force, prune: !o.noPrune })) {
              process.stdout.write('Untagged' in r ? `Untagged: ${r.Untagged}\n` : `Deleted: ${r.Deleted}\n`);
            }
          } catch (e) {
            failed = true;
            process.stderr.write(`Error: ${(e as Error).message}\n`);
          }
        }
        return failed ? 1 : 0;
      }
      case 'check': {
        const problems = await d.layers.check({ verifyContent: o.verify });
        for (const [id] of d.imageStore.map()) {
          try {
            d.imageStore.get(id);
          } catch (e) {
            problems.push(`image ${id}: ${(e as Error).message}`);
          }
        }
        for (const a of d.refs.all()) {
          if (!d.imageStore.has(a.id)) problems.push(`reference ${familiarString(a.ref)} → missing image ${a.id}`);
        }
        for (const p of problems) process.stdout.write(`${p}\n`);
        process.stdout.write(problems.length ? `${problems.length} problem(s) found\n` : 'no problems found\n');
        return problems.length ? 1 : 0;
      }
    }
    return 2;
  } catch (e) {
    process.stderr.write(`berth storage ${cmd}: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await d?.close().catch(() => {});
    if (d) fs.rmSync(cfg.execRoot, { recursive: true, force: true });
    release();
  }
}
