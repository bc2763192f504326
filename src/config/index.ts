// berthd's configuration: command-line flags, daemon.json, their merge, and
// SIGHUP reload. Names, defaults, validation and error wording follow dockerd
// (20.10 and 28); berth's own defaults differ only where they would clash with
// an installed Docker (data-root, exec-root, pidfile, config file, socket).
//
// Typical use in src/cmd/berthd.ts:
//
//   const { config, flags, warnings, sources } = loadDaemonConfigDetailed({ argv: process.argv.slice(2) });
//     // throws BerthError('invalid-argument') with dockerd's wording; print message, exit 1
//   if (flags.help) { process.stdout.write(usage()); exit 0 }
//   if (flags.version) …
//   if (flags.validate) { print 'configuration OK'; exit 0 }
//   assertSupported(config, SUPPORTED_KEYS);  // BerthError('not-implemented'): "berthd does not support … yet"
//   on SIGHUP:
//     const text = readConfigFile(path, explicit);          // undefined when the default file is missing
//     const r = reloadDaemonConfig(live, flags, text, { configFile: path });  // throws → keep `live`
//     live = r.next; log r.changed (applied) and r.needRestart (ignored until restart)
//
// Keys everywhere (setKeys, sources, changed, needRestart, unsupportedSettings)
// are daemon.json key names ("max-concurrent-downloads", "data-root", …);
// DaemonConfig properties are their camelCase forms (maxConcurrentDownloads).
export {
  type ParsedFlags,
  PROGRAM,
  parseFlags,
  usage,
} from './flags.js';
export { findComment, JsonSyntaxError, parseJson } from './json.js';
export {
  assertSupported,
  effectiveLogLevel,
  type LoadOptions,
  type LoadResult,
  loadDaemonConfig,
  loadDaemonConfigDetailed,
  parseDaemonJson,
  RELOADABLE_KEYS,
  type ReloadResult,
  readConfigFile,
  reloadDaemonConfig,
  resolveDaemonConfig,
  type Source,
  suggestKey,
  unsupportedSettings,
  validateConfig,
} from './load.js';
export {
  type AddressPool,
  BUILTIN_RUNTIMES,
  BY_KEY,
  type DaemonConfig,
  DEFAULT_CONFIG_FILE,
  DEFAULT_HOST,
  DEFAULT_TCP_PORT,
  DEFAULT_TLS_TCP_PORT,
  DEFAULT_UNIX_SOCKET,
  DEFAULTS,
  type Runtime,
  SETTINGS,
  type Setting,
  type Ulimit,
} from './spec.js';
export { type DaemonHost, maskCredentials, parseDaemonHost } from './values.js';
