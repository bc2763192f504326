// `berth registry serve [CONFIG]`: distribution's YAML configuration shape and
// its REGISTRY_* environment overrides (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY,
// REGISTRY_HTTP_ADDR, REGISTRY_STORAGE_DELETE_ENABLED, …: the path of a key,
// upper-cased and joined by `_`; the value is parsed as YAML).
import fs from 'node:fs';
import YAML from 'yaml';
import { invalidArgument } from '../errors/index.js';
import { LOG_LEVELS, type LogLevel } from '../log/index.js';

export interface RegistryConfig {
  version: string;
  log: { level: LogLevel; accessLogDisabled: boolean };
  storage: {
    driver: 'filesystem' | 'inmemory';
    rootDirectory: string;
    deleteEnabled: boolean;
    uploadPurging: { enabled: boolean; ageMs: number; intervalMs: number; dryRun: boolean };
    readOnly: boolean;
    /** berth: collection run by the serving process itself (see docs/registry.md). */
    gc: { enabled: boolean; intervalMs: number; deleteUntagged: boolean; dryRun: boolean; graceMs: number };
  };
  http: {
    addr: string;
    host?: string;
    tls?: { certificate: string; key: string };
    /** Manifest body limit in bytes (4 MiB, the spec's SHOULD). */
    manifestMaxBytes: number;
    /** The debug server: /metrics (Prometheus), /debug/health, POST /debug/gc. */
    debug?: { addr: string; prometheus: { enabled: boolean; path: string } };
  };
  auth?: {
    /** anonymousread (berth): GET/HEAD without credentials; writes need a valid user. */
    htpasswd?: { realm: string; path: string; anonymousread: boolean };
    token?: { realm: string; service: string; issuer: string; rootcertbundle: string };
  };
  proxy?: { remoteurl: string; username?: string; password?: string; ttl?: number };
}

export const DEFAULT_ROOT = '/var/lib/registry';
export const DEFAULT_ADDR = ':5000';
const HOUR = 3600_000;

/** Go's time.ParseDuration for the units distribution configs use. */
export function parseDuration(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v / 1e6; // Go: an integer is nanoseconds
  if (typeof v !== 'string')
    throw invalidArgument(`${what}: expected a duration such as 168h, got ${JSON.stringify(v)}`);
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: HOUR };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    total += Number(m[1]) * units[m[2]!]!;
    matched = re.lastIndex;
  }
  if (v === '' || matched !== v.length) throw invalidArgument(`${what}: invalid duration ${JSON.stringify(v)}`);
  return total;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Applies REGISTRY_* variables onto the raw YAML document (keys matched case-insensitively). */
export function applyEnv(raw: Obj, env: NodeJS.ProcessEnv): string[] {
  const applied: string[] = [];
  for (const [k, v] of Object.entries(env).sort(([a], [b]) => a.length - b.length || a.localeCompare(b))) {
    if (!k.startsWith('REGISTRY_') || v === undefined) continue;
    const parts = k.slice('REGISTRY_'.length).toLowerCase().split('_').filter(Boolean);
    if (parts.length === 0) continue;
    let value: unknown;
    try {
      value = YAML.parse(v);
    } catch {
      value = v;
    }
    if (value === null) value = v === '' ? '' : value;
    let node: Obj = raw;
    for (let i = 0; i < parts.length - 1; i++) {
      const key = Object.keys(node).find((x) => x.toLowerCase() === parts[i]) ?? parts[i]!;
      if (!isObj(node[key])) {
        // REGISTRY_STORAGE=filesystem style: a scalar naming the map's only key.
        const prev = node[key];
        node[key] = typeof prev === 'string' ? { [prev]: {} } : {};
      }
      node = node[key] as Obj;
    }
    const last = parts.at(-1)!;
    const key = Object.keys(node).find((x) => x.toLowerCase() === last) ?? last;
    if (parts.length === 1 && last === 'storage' && typeof value === 'string') {
      // REGISTRY_STORAGE=<driver> selects the driver, keeping the non-driver sections.
      const prev = isObj(node.storage) ? (node.storage as Obj) : {};
      const kept: Obj = {};
      for (const s of ['delete', 'maintenance', 'cache', 'redirect']) if (s in prev) kept[s] = prev[s];
      kept[value] = isObj(prev[value]) ? prev[value] : {};
      node.storage = kept;
    } else node[key] = value;
    applied.push(k);
  }
  return applied;
}

const bool = (v: unknown, what: string, dflt: boolean): boolean => {
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'boolean') return v;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw invalidArgument(`${what}: expected true or false, got ${JSON.stringify(v)}`);
};
const str = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || v === '') throw invalidArgument(`${what} is required`);
  return v;
};

const NON_DRIVER_STORAGE_KEYS = new Set(['delete', 'maintenance', 'cache', 'redirect', 'tag']);

/** Builds a validated config from a parsed YAML document (after env overrides). */
export function configFromDocument(raw: Obj, requireVersion = true): RegistryConfig {
  if (requireVersion && raw.version === undefined) throw invalidArgument('configuration: version is required (0.1)');
  const version = raw.version === undefined ? '0.1' : String(raw.version);
  if (version !== '0.1') throw invalidArgument(`configuration: unsupported version ${JSON.stringify(version)} (0.1)`);

  const log = isObj(raw.log) ? raw.log : {};
  const level = (log.level ?? 'info') as string;
  if (!LOG_LEVELS.includes(level as LogLevel) && level !== 'warning')
    throw invalidArgument(`log.level: invalid level ${JSON.stringify(level)}`);
  const accesslog = isObj(log.accesslog) ? log.accesslog : {};

  const storage = isObj(raw.storage) ? raw.storage : {};
  const drivers = Object.keys(storage).filter((k) => !NON_DRIVER_STORAGE_KEYS.has(k));
  if (drivers.length > 1) throw invalidArgument(`storage: exactly one driver allowed, got ${drivers.join(', ')}`);
  const driver = drivers[0] ?? 'filesystem';
  if (driver !== 'filesystem' && driver !== 'inmemory')
    throw invalidArgument(`storage: driver ${JSON.stringify(driver)} is not supported (filesystem, inmemory)`);
  const fsParams = isObj(storage.filesystem) ? storage.filesystem : {};
  const rootDirectory =
    fsParams.rootdirectory === undefined
      ? DEFAULT_ROOT
      : str(fsParams.rootdirectory, 'storage.filesystem.rootdirectory');
  const del = isObj(storage.delete) ? storage.delete : {};
  const maint = isObj(storage.maintenance) ? storage.maintenance : {};
  const up = isObj(maint.uploadpurging) ? maint.uploadpurging : {};
  const ro = isObj(maint.readonly) ? maint.readonly : {};
  const gc = isObj(maint.gc) ? maint.gc : {};

  const http = isObj(raw.http) ? raw.http : {};
  const addr = http.addr === undefined ? DEFAULT_ADDR : str(http.addr, 'http.addr');
  let tls: RegistryConfig['http']['tls'];
  if (isObj(http.tls) && (http.tls.certificate !== undefined || http.tls.key !== undefined)) {
    tls = { certificate: str(http.tls.certificate, 'http.tls.certificate'), key: str(http.tls.key, 'http.tls.key') };
  }

  const cfg: RegistryConfig = {
    version,
    log: {
      level: (level === 'warning' ? 'warn' : level) as LogLevel,
      accessLogDisabled: bool(accesslog.disabled, 'log.accesslog.disabled', false),
    },
    storage: {
      driver,
      rootDirectory,
      deleteEnabled: bool(del.enabled, 'storage.delete.enabled', false),
      uploadPurging: {
        enabled: bool(up.enabled, 'storage.maintenance.uploadpurging.enabled', true),
        ageMs: up.age === undefined ? 168 * HOUR : parseDuration(up.age, 'storage.maintenance.uploadpurging.age'),
        intervalMs:
          up.interval === undefined
            ? 24 * HOUR
            : parseDuration(up.interval, 'storage.maintenance.uploadpurging.interval'),
        dryRun: bool(up.dryrun, 'storage.maintenance.uploadpurging.dryrun', false),
      },
      readOnly: bool(ro.enabled, 'storage.maintenance.readonly.enabled', false),
      gc: {
        enabled: bool(gc.enabled, 'storage.maintenance.gc.enabled', false),
        intervalMs:
          gc.interval === undefined ? 24 * HOUR : parseDuration(gc.interval, 'storage.maintenance.gc.interval'),
        deleteUntagged: bool(gc.deleteuntagged, 'storage.maintenance.gc.deleteuntagged', false),
        dryRun: bool(gc.dryrun, 'storage.maintenance.gc.dryrun', false),
        graceMs: gc.grace === undefined ? 0 : parseDuration(gc.grace, 'storage.maintenance.gc.grace'),
      },
    },
    http: {
      addr,
      ...(typeof http.host === 'string' ? { host: http.host } : {}),
      ...(tls ? { tls } : {}),
      manifestMaxBytes: 4 * 1024 * 1024,
    },
  };
  if (isObj(http.debug) && http.debug.addr !== undefined) {
    const prom = isObj(http.debug.prometheus) ? http.debug.prometheus : {};
    cfg.http.debug = {
      addr: str(http.debug.addr, 'http.debug.addr'),
      prometheus: {
        // distribution needs prometheus.enabled; berth serves /metrics on the debug server by default.
        enabled: bool(prom.enabled, 'http.debug.prometheus.enabled', true),
        path: prom.path === undefined ? '/metrics' : str(prom.path, 'http.debug.prometheus.path'),
      },
    };
  }

  if (isObj(raw.auth)) {
    const kinds = Object.keys(raw.auth);
    if (kinds.length > 1) throw invalidArgument(`auth: only one scheme may be configured, got ${kinds.join(', ')}`);
    const a = raw.auth;
    cfg.auth = {};
    if (isObj(a.htpasswd)) {
      cfg.auth.htpasswd = {
        realm: str(a.htpasswd.realm, 'auth.htpasswd.realm'),
        path: str(a.htpasswd.path, 'auth.htpasswd.path'),
        anonymousread: bool(a.htpasswd.anonymousread, 'auth.htpasswd.anonymousread', false),
      };
    } else if (isObj(a.token)) {
      cfg.auth.token = {
        realm: str(a.token.realm, 'auth.token.realm'),
        service: str(a.token.service, 'auth.token.service'),
        issuer: str(a.token.issuer, 'auth.token.issuer'),
        rootcertbundle: str(a.token.rootcertbundle, 'auth.token.rootcertbundle'),
      };
    } else if (kinds.length === 1) throw invalidArgument(`auth: unsupported scheme ${JSON.stringify(kinds[0])}`);
  }
  if (isObj(raw.proxy) && raw.proxy.remoteurl !== undefined) {
    const p = raw.proxy;
    const remoteurl = str(p.remoteurl, 'proxy.remoteurl');
    try {
      new URL(remoteurl);
    } catch {
      throw invalidArgument(`proxy.remoteurl: invalid URL ${JSON.stringify(remoteurl)}`);
    }
    cfg.proxy = {
      remoteurl,
      ...(typeof p.username === 'string' ? { username: p.username } : {}),
      ...(typeof p.password === 'string' ? { password: p.password } : {}),
      ...(p.ttl !== undefined ? { ttl: parseDuration(p.ttl, 'proxy.ttl') } : {}),
    };
  }
  return cfg;
}

/** Reads the config file (if any), applies REGISTRY_* overrides, validates. */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): RegistryConfig {
  let raw: Obj = {};
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw invalidArgument(`configuration: cannot read ${file}: ${(e as Error).message}`);
    }
    const doc = YAML.parse(text) as unknown;
    if (doc !== null && doc !== undefined && !isObj(doc))
      throw invalidArgument(`configuration: ${file} is not a YAML map`);
    raw = (doc as Obj) ?? {};
  }
  applyEnv(raw, env);
  return configFromDocument(raw, file !== undefined);
}

/** Splits `host:port` / `:port` (distribution's http.addr) for net.listen. */
export function parseAddr(addr: string): { host?: string; port: number } {
  const i = addr.lastIndexOf(':');
  if (i === -1) throw invalidArgument(`http.addr: expected host:port, got ${JSON.stringify(addr)}`);
  let host = addr.slice(0, i);
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgument(`http.addr: invalid port in ${addr}`);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return host ? { host, port } : { port };
}
