// `berth registry …`: serve [CONFIG] (distribution's `registry serve config.yml`).
import { kindOf } from '../errors/index.js';
import { Logger } from '../log/index.js';
import { loadConfig } from './config.js';
import { RegistryError } from './errors.js';
import { startRegistry } from './server.js';
import { FilesystemDriver, InMemoryDriver } from './storage/index.js';

const USAGE = `Usage: berth registry COMMAND

Commands:
  serve [CONFIG]   serve the OCI distribution API (config in distribution's YAML shape;
                   REGISTRY_* environment variables override it; defaults: :5000, /var/lib/registry)
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 1;
  }
  if (cmd === 'serve') return serve(rest);
  if (cmd === 'garbage-collect') {
    console.error('berth registry garbage-collect: not implemented yet');
    return 1;
  }
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
