#!/usr/bin/env node
// `berth`: the tool for berth's storage and its registry.
// Each subcommand lives with the module it drives and is loaded on demand,
// so `berth registry …` never loads the engine's stores and vice versa.
// (bin/berth.cjs is the installed entry point: it tunes the thread pool first.)
const commands: Record<string, { describe: string; load: () => Promise<{ main(argv: string[]): Promise<number> }> }> = {
  registry: { describe: 'run and maintain an OCI distribution registry', load: () => import('../registry/cli.js') },
  storage: { describe: 'inspect, check and load into a data-root', load: () => import('./storage-cli.js') },
};

function usage(): string {
  const lines = ['Usage: berth COMMAND [ARGS…]', '', 'Commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${c.describe}`);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd ? 0 : 1;
  }
  const c = commands[cmd];
  if (!c) {
    console.error(`berth: unknown command ${JSON.stringify(cmd)}\n\n${usage()}`);
    return 2;
  }
  return (await c.load()).main(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`berth: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
