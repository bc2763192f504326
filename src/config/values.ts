// Parsers and validators for single setting values, shared by the flag parser
// and daemon.json. Error texts follow dockerd's (opts/, registry/, go-units).
import net from 'node:net';
import {
  type AddressPool,
  DEFAULT_TCP_PORT,
  DEFAULT_TLS_TCP_PORT,
  DEFAULT_UNIX_SOCKET,
  type Runtime,
  STOCK_RUNTIME,
  type Ulimit,
} from './spec.js';

/** A validation failure; message is the user-facing text. */
export class ValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueError';
  }
}
const bad = (msg: string): never => {
  throw new ValueError(msg);
};

// ---- Go-compatible scalar parsing -----------------------------------------

/** strconv.ParseBool */
export function parseGoBool(s: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return bad(`strconv.ParseBool: parsing ${JSON.stringify(s)}: invalid syntax`);
}

/** strconv.ParseInt(s, 0, 64) as pflag's IntVar uses it. */
export function parseGoInt(s: string): number {
  const m = /^([+-]?)(0[xX][0-9a-fA-F_]+|0[oO]?[0-7_]+|0[bB][01_]+|[0-9]+)$/.exec(s);
  if (!m) return bad(`strconv.ParseInt: parsing ${JSON.stringify(s)}: invalid syntax`);
  const body = m[2]!.replace(/_/g, '');
  let v: number;
  if (/^0[xX]/.test(body)) v = Number.parseInt(body.slice(2), 16);
  else if (/^0[bB]/.test(body)) v = Number.parseInt(body.slice(2), 2);
  else if (/^0[oO]/.test(body)) v = Number.parseInt(body.slice(2), 8);
  else if (/^0[0-7]+$/.test(body)) v = Number.parseInt(body.slice(1), 8);
  else v = Number.parseInt(body, 10);
  if (m[1] === '-') v = -v;
  if (!Number.isSafeInteger(v)) return bad(`strconv.ParseInt: parsing ${JSON.stringify(s)}: value out of range`);
  return v;
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** go-units RAMInBytes: "64m", "64MiB", "1.5g", "512" (bytes); binary multiples. */
export function parseBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s);
  if (!m) return bad(`invalid size: '${s}'`);
  const n = Number.parseFloat(m[1]!);
  if (!Number.isFinite(n)) return bad(`invalid size: '${s}'`);
  return Math.trunc(n * UNITS[(m[2] ?? '').toLowerCase()]!);
}

// ---- hosts ----------------------------------------------------------------

export interface DaemonHost {
  proto: 'unix' | 'tcp' | 'fd';
  /** unix: socket path; tcp: host:port (IPv6 in brackets); fd: '' or the fd number or name */
  address: string;
  /** canonical form, e.g. tcp://127.0.0.1:2376 */
  url: string;
}

/**
 * Parses a -H / "hosts" entry as dockerd does (opts/hosts.go), with one
 * deliberate difference: a bare path such as "/var/run/docker.sock" (the
 * seed's daemon.json has one) is refused with a hint, where dockerd silently
 * turns it into tcp://localhost:2375/var/run/docker.sock.
 */
export function parseDaemonHost(val: string, tls = false): DaemonHost {
  const addr = val.trim();
  if (addr === '') {
    return { proto: 'unix', address: DEFAULT_UNIX_SOCKET, url: `unix://${DEFAULT_UNIX_SOCKET}` };
  }
  const sep = addr.indexOf('://');
  let proto: string;
  let rest: string;
  if (sep < 0) {
    if (addr.startsWith('/') || addr.startsWith('.')) {
      return bad(`Invalid bind address format: ${val} (a socket path needs the unix:// scheme: unix://${addr})`);
    }
    proto = 'tcp';
    rest = addr;
  } else {
    proto = addr.slice(0, sep);
    rest = addr.slice(sep + 3);
  }
  switch (proto) {
    case 'unix': {
      if (rest.includes('://')) return bad(`Invalid proto, expected unix: ${rest}`);
      const p = rest === '' ? DEFAULT_UNIX_SOCKET : rest;
      return { proto: 'unix', address: p, url: `unix://${p}` };
    }
    case 'fd':
      if (rest !== '' && rest !== '*' && !/^[A-Za-z0-9_.:-]+$/.test(rest)) {
        return bad(`Invalid bind address format: ${val}`);
      }
      return { proto: 'fd', address: rest, url: `fd://${rest}` };
    case 'tcp':
      return parseTcp(rest, val, tls);
    case 'npipe':
      return bad(`Invalid bind address format: ${val} (npipe:// is only available on Windows)`);
    default:
      return bad(`Invalid bind address format: ${val}`);
  }
}

function parseTcp(rest: string, original: string, tls: boolean): DaemonHost {
  const defPort = String(tls ? DEFAULT_TLS_TCP_PORT : DEFAULT_TCP_PORT);
  if (rest.includes('://')) return bad(`Invalid proto, expected tcp: ${original}`);
  let host: string;
  let port: string;
  if (rest === '') {
    host = '';
    port = defPort;
  } else if (rest.startsWith('[')) {
    const end = rest.indexOf(']');
    if (end < 0) return bad(`Invalid bind address format: ${original}`);
    host = rest.slice(1, end);
    const after = rest.slice(end + 1);
    if (after === '' || after === ':') port = defPort;
    else if (after.startsWith(':')) port = after.slice(1);
    else return bad(`Invalid bind address format: ${original}`);
    if (net.isIPv6(host) === false) return bad(`Invalid bind address format: ${original}`);
  } else {
    const colons = rest.split(':').length - 1;
    if (colons > 1) return bad(`Invalid bind address format: ${original}`);
    const i = rest.lastIndexOf(':');
    host = i < 0 ? rest : rest.slice(0, i);
    port = i < 0 || rest.slice(i + 1) === '' ? defPort : rest.slice(i + 1);
  }
  if (!/^\d+$/.test(port) || Number(port) > 65535) return bad(`Invalid bind address format: ${original}`);
  if (host.includes('/') || /\s/.test(host)) return bad(`Invalid bind address format: ${original}`);
  const h = host === '' ? 'localhost' : host;
  const hp = h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`;
  return { proto: 'tcp', address: hp, url: `tcp://${hp}` };
}

export function validateHost(val: string): string {
  parseDaemonHost(val);
  return val;
}

// ---- small validators (opts/opts.go) --------------------------------------

export function validateLabel(val: string): string {
  if (!val.includes('=')) bad(`bad attribute format: ${val}`);
  return val;
}

export function validateIPAddress(val: string): string {
  const v = val.trim();
  if (net.isIP(v) === 0) bad(`${val} is not an ip address`);
  return v;
}

export function validateDNSSearch(val: string): string {
  const v = val.trim();
  if (v === '.') return v;
  const d = v.endsWith('.') ? v.slice(0, -1) : v;
  if (
    !/[a-zA-Z]/.test(d) ||
    d.length >= 255 ||
    !/^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(d)
  ) {
    bad(`${val} is not a valid domain`);
  }
  return v;
}

export function validateGenericResource(val: string): string {
  if (!val.includes('=')) bad(`invalid node-generic-resource format \`${val}\` expected \`name=value\``);
  return val;
}

export function validateKeyValueOpt(val: string): string {
  const i = val.indexOf('=');
  if (i <= 0) bad(`unable to parse key/value option: ${val}`);
  return val;
}

export function validateExecOpt(val: string): string {
  const i = val.indexOf('=');
  const k = (i < 0 ? val : val.slice(0, i)).trim().toLowerCase();
  const v = i < 0 ? '' : val.slice(i + 1).trim();
  if (i < 0 || k === '' || v === '') bad(`invalid exec-opt (${val}): must be formatted 'opt=value'`);
  if (k === 'native.cgroupdriver') {
    if (v !== 'cgroupfs' && v !== 'systemd')
      bad(`invalid exec-opt (${val}): native.cgroupdriver option ${v} not supported`);
  } else if (k === 'native.umask') {
    if (v !== 'normal' && v !== 'unmodified') bad(`invalid exec-opt (${val}): native.umask option ${v} not supported`);
  } else {
    bad(`invalid exec-opt (${val}): unknown option: ${JSON.stringify(k)}`);
  }
  return val;
}

export function isCIDR(val: string, family?: 4 | 6): boolean {
  const i = val.indexOf('/');
  if (i < 0) return false;
  const ip = val.slice(0, i);
  const bits = val.slice(i + 1);
  const fam = net.isIP(ip);
  if (fam === 0 || (family && fam !== family) || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (fam === 4 ? 32 : 128);
}

// ---- registries (registry/config.go) --------------------------------------

function goQuote(s: string): string {
  return JSON.stringify(s);
}

export function validateMirror(val: string): string {
  let u: URL;
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(val)?.[1] ?? '';
  if (scheme !== 'http' && scheme !== 'https') {
    return bad(`invalid mirror: unsupported scheme ${goQuote(scheme)} in ${goQuote(val)}`);
  }
  try {
    u = new URL(val);
  } catch {
    return bad(`invalid mirror: ${goQuote(val)} is not a valid URI`);
  }
  if ((u.pathname !== '' && u.pathname !== '/') || u.search !== '' || u.hash !== '' || /[?#]/.test(val)) {
    return bad(`invalid mirror: path, query, or fragment at end of the URI ${goQuote(val)}`);
  }
  if (u.username !== '' || u.password !== '') {
    const masked = `${u.protocol}//${u.username}:xxxxx@${u.host}`;
    return bad(`invalid mirror: username/password not allowed in URI ${goQuote(masked)}`);
  }
  return `${val.replace(/\/+$/, '')}/`;
}

/**
 * One entry of "berth-registry-mirrors": the key is a registry as it appears
 * in image references (host or host:port, no scheme, no path; docker.io for
 * Docker Hub), the value its mirrors, each an http(s) URL as registry-mirrors
 * takes them.
 */
export function validateRegistryMirrors(host: string, mirrors: readonly string[]): void {
  const h = host.startsWith('[') ? host : host.toLowerCase();
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(h);
  const ok = bracketed ? net.isIPv6(bracketed[1]!) : HOST_PORT_RE.test(h);
  const port = bracketed ? bracketed[2] : /:(\d+)$/.exec(h)?.[1];
  if (!ok || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) {
    bad(
      `invalid berth-registry-mirrors key ${goQuote(host)}: expected a registry as in image references, host[:port] (no scheme, no path)`,
    );
  }
  if (mirrors.length === 0) bad(`invalid berth-registry-mirrors entry ${goQuote(host)}: no mirrors given`);
  for (const m of mirrors) {
    try {
      validateMirror(m);
    } catch (e) {
      bad(`invalid berth-registry-mirrors entry ${goQuote(host)}: ${(e as Error).message}`);
    }
  }
}

/** registry.ValidateIndexName, as the flag validator runs it. */
export function validateIndexName(val: string): string {
  const v = val === 'index.docker.io' ? 'docker.io' : val;
  if (v.startsWith('-') || v.endsWith('-')) bad(`Invalid index name (${v}). Cannot begin or end with a hyphen.`);
  return v;
}

const HOSTNAME_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST_PORT_RE = new RegExp(`^(?:${HOSTNAME_COMPONENT}(?:\\.${HOSTNAME_COMPONENT})*)(?::\\d+)?$`);

/**
 * An insecure-registries / allow-nondistributable-artifacts entry: a CIDR or
 * a host[:port]. A leading http:// or https:// is stripped with a warning, as
 * dockerd does. Returns the normalised entry.
 */
export function normalizeRegistryEntry(
  val: string,
  what: 'insecure registry' | 'allow-nondistributable-artifacts registry',
  warn: (msg: string) => void,
): string {
  let r = validateIndexName(val);
  const lower = r.toLowerCase();
  if (lower.startsWith('http://')) {
    warn(`${what} ${r} should not contain 'http://' and 'http://' has been removed from the ${what} config`);
    r = r.slice(7);
  } else if (lower.startsWith('https://')) {
    warn(`${what} ${r} should not contain 'https://' and 'https://' has been removed from the ${what} config`);
    r = r.slice(8);
  } else if (r.includes('://')) {
    bad(`${what} ${r} should not contain '://'`);
  }
  if (isCIDR(r)) return r;
  if (/^[0-9a-fA-F.:]+\/[^/]*$/.test(r) && net.isIP(r.split('/')[0]!) !== 0) {
    bad(`${what} ${r} is not valid: invalid CIDR address ${goQuote(r)}`);
  }
  let host = r;
  let port = '';
  const br = /^\[([^\]]+)\](?::(.*))?$/.exec(r);
  if (br) {
    host = br[1]!;
    port = br[2] ?? '';
  } else if ((r.match(/:/g) ?? []).length === 1) {
    [host, port] = r.split(':') as [string, string];
  }
  if (!HOST_PORT_RE.test(r) && net.isIP(host) === 0) bad(`${what} ${r} is not valid: invalid host ${goQuote(host)}`);
  if (port !== '' && (!/^\d+$/.test(port) || Number(port) > 65535)) {
    bad(`${what} ${r} is not valid: invalid port ${goQuote(port)}`);
  }
  return r;
}

// ---- structured flag values -----------------------------------------------

const ULIMIT_NAMES = new Set([
  'core',
  'cpu',
  'data',
  'fsize',
  'locks',
  'memlock',
  'msgqueue',
  'nice',
  'nofile',
  'nproc',
  'rss',
  'rtprio',
  'rttime',
  'sigpending',
  'stack',
]);

/** go-units ParseUlimit: name=soft[:hard] */
export function parseUlimit(val: string): Ulimit {
  const i = val.indexOf('=');
  if (i < 0) return bad(`invalid ulimit argument: ${val}`);
  const name = val.slice(0, i);
  if (!ULIMIT_NAMES.has(name)) return bad(`invalid ulimit type: ${name}`);
  const parts = val.slice(i + 1).split(':');
  if (parts.length > 2) {
    return bad(`too many limit value arguments - ${val.slice(i + 1)}, can only have up to two, \`soft[:hard]\``);
  }
  const soft = parseDecimal(parts[0]!);
  const hard = parts.length === 2 ? parseDecimal(parts[1]!) : soft;
  return checkUlimit({ name, soft, hard });
}

function parseDecimal(s: string): number {
  if (!/^[+-]?\d+$/.test(s)) return bad(`strconv.ParseInt: parsing ${JSON.stringify(s)}: invalid syntax`);
  return Number(s);
}

export function checkUlimit(u: Ulimit): Ulimit {
  if (!ULIMIT_NAMES.has(u.name)) return bad(`invalid ulimit type: ${u.name}`);
  if (u.hard !== -1 && u.soft > u.hard) {
    return bad(`ulimit soft limit must be less than or equal to hard limit: ${u.soft} > ${u.hard}`);
  }
  return u;
}

export function formatUlimit(u: Ulimit): string {
  return `${u.name}=${u.soft}:${u.hard}`;
}

/** --add-runtime name=path */
export function parseRuntimeFlag(val: string): [string, Runtime] {
  const i = val.indexOf('=');
  const name = (i < 0 ? '' : val.slice(0, i)).trim().toLowerCase();
  const p = i < 0 ? '' : val.slice(i + 1).trim();
  if (name === '' || p === '') return bad(`invalid runtime argument: ${val}`);
  if (name === STOCK_RUNTIME) return bad(`runtime name '${STOCK_RUNTIME}' is reserved`);
  return [name, { path: p }];
}

/** --default-address-pool base=10.10.0.0/16,size=24 */
export function parseAddressPool(val: string): AddressPool {
  let base = '';
  let size = 0;
  for (const field of val.split(',')) {
    const i = field.indexOf('=');
    if (i < 0) return bad(`invalid field '${field}' must be a key=value pair`);
    const k = field.slice(0, i).toLowerCase();
    const v = field.slice(i + 1);
    if (k === 'base') base = v;
    else if (k === 'size') {
      if (!/^\d+$/.test(v)) return bad(`invalid size value: ${JSON.stringify(val)} (must be integer)`);
      size = Number(v);
    } else return bad(`unexpected field key '${k}'`);
  }
  return checkAddressPool({ base, size });
}

export function checkAddressPool(p: AddressPool): AddressPool {
  if (!isCIDR(p.base)) return bad(`invalid base pool ${JSON.stringify(p.base)}: must be a CIDR such as 10.10.0.0/16`);
  const bits = Number(p.base.split('/')[1]);
  const max = net.isIPv4(p.base.split('/')[0]!) ? 32 : 128;
  if (!Number.isInteger(p.size) || p.size < bits || p.size > max) {
    return bad(`invalid pool size ${p.size} for base ${p.base}: must be between ${bits} and ${max}`);
  }
  return p;
}

/** key=value; dockerd's map options accept a bare key as key="" */
export function splitKeyValue(val: string): [string, string] {
  const i = val.indexOf('=');
  return i < 0 ? [val, ''] : [val.slice(0, i), val.slice(i + 1)];
}

export const LOG_LEVELS = ['panic', 'fatal', 'error', 'warn', 'warning', 'info', 'debug', 'trace'];

/** Masks user:password in a proxy URL as dockerd's MaskCredentials does. */
export function maskCredentials(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.username === '' && u.password === '') return raw;
    u.username = 'xxxxx';
    u.password = 'xxxxx';
    return u.toString().replace(/\/$/, raw.endsWith('/') ? '/' : '');
  } catch {
    return raw;
  }
}

/** Formats a value as Go's fmt %v prints it (used in the flag/file conflict message). */
export function goFormat(v: unknown): string {
  if (v === null || v === undefined) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(goFormat).join(' ')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object).sort();
    return `map[${keys.map((k) => `${k}:${goFormat((v as Record<string, unknown>)[k])}`).join(' ')}]`;
  }
  return String(v);
}
