// `berth registry …`: serve [CONFIG] (distribution's `registry serve config.yml`).
import { kindOf } from '../errors/index.js';
import { Logger } from '../log/index.js';
import { loadConfig, parseDuration } from './config.js';
import { RegistryError } from './errors.js';
import { garbageCollect } from './gc.js';
import { startRegistry } from './server.js';
import { FilesystemDriver, InMemoryDriver } from './storage/index.js';

const USAGE = `Usage: berth registry COMMAND

Commands:
  serve [CONFIG]   serve the OCI distribution API (config in distribution's YAML shape;
                   REGISTRY_* environment variables override it; defaults: :5000, /var/lib/registry)
  garbage-collect [--dry-run|-d] [--delete-untagged|-m] [--grace DURATION] CONFIG
                   delete blobs no manifest references (and, with -m, manifests no tag names);
                   run it with the registry stopped or in read-only mode (docs/registry.md)
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 1;
  }
  if (cmd === 'serve') return serve(rest);
  if (cmd === 'garbage-collect') return garbageCollectCmd(rest);
  console.error(`berth registry: unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
  return 1;
}

async function serve(args: string[]): Promise<number> {
  const file = args.find((a) => !a.startsWith('-'));
  const logger = new Logger('info', (l) => process.stderr.write(l), { service: 'registry' });
  let cfg: ReturnType<typeof loadConfig>;
  try {
    cfg = loadConfig(file);
  } catch (e) {
    console.error(`berth registry: configuration error: ${(e as Error).message}`);
    return 1;
  }
  logger.setLevel(cfg.log.level);
  const driver =
    cfg.storage.driver === 'inmemory' ? new InMemoryDriver() : new FilesystemDriver(cfg.storage.rootDirectory);
  let running: Awaited<ReturnType<typeof startRegistry>>;
  try {
    running = await startRegistry(cfg, { driver, logger, accessLog: (l) => process.stdout.write(l) });
  } catch (e) {
    const msg = e instanceof RegistryError ? e.message : `${(e as Error).message} (${kindOf(e)})`;
    console.error(`berth registry: ${msg}`);
    return 1;
  }
  logger.info('berth registry serving', {
    url: running.url,
    root: cfg.storage.driver === 'filesystem' ? cfg.storage.rootDirectory : 'inmemory',
    readOnly: cfg.storage.readOnly,
    delete: cfg.storage.deleteEnabled,
  });
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      logger.info('shutting down', { signal: sig });
      void running.close().then(resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

async function garbageCollectCmd(args: string[]): Promise<number> {
  let dryRun = false;
  let removeUntagged = false;
  let graceMs = 0;
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--dry-run' || a === '-d') dryRun = true;
    else if (a === '--delete-untagged' || a === '-m') removeUntagged = true;
    else if (a === '--grace' || a.startsWith('--grace=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[++i];
      try {
        graceMs = parseDuration(v, '--grace');
      } catch (e) {
        console.error(`berth registry garbage-collect: ${(e as Error).message}`);
        return 1;
      }
    } else if (a.startsWith('-')) {
      console.error(`berth registry garbage-collect: unknown flag ${a}`);
      return 1;
    } else if (file === undefined) file = a;
    else {
      console.error('berth registry garbage-collect: exactly one CONFIG expected');
      return 1;
    }
  }
  if (!file) {
    console.error('berth registry garbage-collect: CONFIG is required\n\n' + USAGE);
    return 1;
  }
  let cfg: ReturnType<typeof loadConfig>;
  try {
    cfg = loadConfig(file);
  } catch (e) {
    console.error(`berth registry: configuration error: ${(e as Error).message}`);
    return 1;
  }
  if (cfg.storage.driver !== 'filesystem') {
    console.error('berth registry garbage-collect: the inmemory driver has nothing to collect');
    return 1;
  }
  try {
    await garbageCollect(new FilesystemDriver(cfg.storage.rootDirectory), {
      dryRun,
      removeUntagged,
      graceMs,
      emit: (l) => process.stdout.write(`${l}\n`),
    });
  } catch (e) {
    console.error(`berth registry garbage-collect: ${(e as Error).message}`);
    return 1;
  }
  return 0;
}
