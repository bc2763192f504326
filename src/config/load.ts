// daemon.json reading, the flag/file merge, semantic validation of the merged
// result, SIGHUP reload as a transaction, and the "not supported yet" check.
import fs from 'node:fs';
import { BerthError } from '../errors/index.js';
import { flagValueString, type ParsedFlags, parseFlags } from './flags.js';
import { describeNode, type JsonEntry, type JsonNode, JsonSyntaxError, parseJson, toPlain } from './json.js';
import {
  BUILTIN_RUNTIMES,
  BY_FLAG,
  BY_KEY,
  type DaemonConfig,
  DEFAULT_CONFIG_FILE,
  DEFAULT_HOST,
  DEFAULTS,
  deepFreeze,
  RELOADABLE_KEYS,
  type Runtime,
  SETTINGS,
  type Setting,
  STOCK_RUNTIME,
  type Ulimit,
} from './spec.js';
import {
  checkAddressPool,
  checkUlimit,
  goFormat,
  isCIDR,
  LOG_LEVELS,
  maskCredentials,
  normalizeRegistryEntry,
  parseBytes,
  parseDaemonHost,
  ValueError,
  validateDNSSearch,
  validateExecOpt,
  validateGenericResource,
  validateIPAddress,
  validateKeyValueOpt,
  validateLabel,
  validateMirror,
  validateRegistryMirrors,
} from './values.js';

const invalid = (msg: string) => new BerthError('invalid-argument', msg);

// ---- daemon.json ------------------------------------------------------------

/** Keys people put in daemon.json that belong elsewhere, with what to say. */
const MISPLACED: Record<string, string> = {
  auths: 'a docker CLI ~/.docker/config.json key (registry credentials), not a daemon.json key; use `docker login`',
  HttpHeaders: 'a docker CLI ~/.docker/config.json key, not a daemon.json key',
  credsStore: 'a docker CLI ~/.docker/config.json key, not a daemon.json key',
  credHelpers: 'a docker CLI ~/.docker/config.json key, not a daemon.json key',
  'config-file': 'only a command-line flag (--config-file)',
  validate: 'only a command-line flag (--validate)',
};

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** The known daemon.json key nearest to an unknown one, if any is near enough. */
export function suggestKey(unknown: string): string | undefined {
  const flagSetting = BY_FLAG.get(unknown);
  if (flagSetting?.flag && flagSetting.key !== unknown && !flagSetting.filePath) return flagSetting.key;
  const candidates = [...SETTINGS.filter((s) => !s.filePath).map((s) => s.key), 'proxies', 'graph'];
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  const u = unknown.toLowerCase().replace(/_/g, '-');
  for (const c of candidates) {
    const d = levenshtein(u, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  const limit = Math.max(2, Math.floor(unknown.length / 3));
  return bestD <= limit ? best : undefined;
}

interface FileConfig {
  values: Partial<DaemonConfig>;
  /** key → the JSON node it came from */
  nodes: Map<string, JsonNode>;
  /** key as written in the file (graph for data-root) */
  fileKeyName: Map<string, string>;
  warnings: string[];
}

const where = (n: JsonNode) => `line ${n.pos.line}, column ${n.pos.column}`;

/**
 * Parses and type-checks daemon.json text. Throws a BerthError whose message
 * is the bare reason (the caller adds the file name).
 */
export function parseDaemonJson(text: string): FileConfig {
  const out: FileConfig = { values: {}, nodes: new Map(), fileKeyName: new Map(), warnings: [] };
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') return out;
  let root: JsonNode;
  try {
    root = parseJson(body);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw invalid(e.message);
    throw e;
  }
  if (root.type !== 'object') {
    throw invalid(`daemon.json must hold a JSON object ({ … }), but it holds ${describeNode(root)}`);
  }

  // 1. unknown keys, all at once, each with its line and a suggestion.
  const unknown: string[] = [];
  const entries: { key: string; node: JsonNode; fileKey: string }[] = [];
  for (const e of root.entries) {
    if (e.key === 'proxies' && e.value.type !== 'object') {
      throw invalid(typeError('proxies', e.value, 'an object with http-proxy, https-proxy or no-proxy').message);
    }
    if (e.key === 'proxies' && e.value.type === 'object') {
      for (const pe of e.value.entries) {
        const s = SETTINGS.find((x) => x.filePath?.[1] === pe.key);
        if (s) entries.push({ key: s.key, node: pe.value, fileKey: `proxies.${pe.key}` });
        else unknown.push(`proxies.${pe.key} (line ${pe.keyPos.line}; expected http-proxy, https-proxy or no-proxy)`);
      }
      continue;
    }
    if (e.key === 'graph') {
      entries.push({ key: 'data-root', node: e.value, fileKey: 'graph' });
      continue;
    }
    const s = BY_KEY.get(e.key);
    if (s && !s.filePath) {
      entries.push({ key: e.key, node: e.value, fileKey: e.key });
      continue;
    }
    let note = MISPLACED[e.key];
    if (!note && s?.filePath) note = `it belongs inside "proxies": { "${e.key}": … }`;
    if (!note) {
      const sug = suggestKey(e.key);
      if (sug && BY_FLAG.get(e.key)?.key === sug)
        note = `"${e.key}" is the command-line flag; in daemon.json the key is "${sug}"`;
      else if (sug) note = `did you mean "${sug}"?`;
    }
    unknown.push(`${e.key} (line ${e.keyPos.line}${note ? `; ${note}` : ''})`);
  }
  if (unknown.length > 0) {
    throw invalid(`the following directives don't match any configuration option: ${unknown.join(', ')}`);
  }

  // 2. graph and data-root together
  const graph = root.entries.find((e) => e.key === 'graph');
  if (graph) {
    if (root.entries.some((e) => e.key === 'data-root')) {
      throw invalid(`cannot specify both "graph" and "data-root" config file options`);
    }
    out.warnings.push(`The "graph" config file option is deprecated. Please use "data-root" instead.`);
  }

  // 3. types, all at once
  const errors: string[] = [];
  for (const { key, node, fileKey } of entries) {
    const s = BY_KEY.get(key)!;
    try {
      (out.values as Record<string, unknown>)[s.prop] = convert(s, node, fileKey);
      out.nodes.set(key, node);
      out.fileKeyName.set(key, fileKey);
      if (s.deprecated) out.warnings.push(`the "${fileKey}" option is deprecated: ${s.deprecated}`);
    } catch (e) {
      if (e instanceof ValueError) errors.push(e.message);
      else throw e;
    }
  }
  if (errors.length > 0) throw invalid(errors.join('; '));
  return out;
}

function typeError(fileKey: string, node: JsonNode, expected: string): ValueError {
  return new ValueError(`"${fileKey}" (${where(node)}) must be ${expected}, not ${describeNode(node)}`);
}

/** Converts one daemon.json value to its typed form; throws ValueError naming the key. */
function convert(s: Setting, node: JsonNode, fileKey: string): unknown {
  const expect = (ok: boolean, expected: string) => {
    if (!ok) throw typeError(fileKey, node, expected);
  };
  const item = (n: JsonNode, expected: string, idx: string) => {
    throw new ValueError(`"${fileKey}"${idx} (${where(n)}) must be ${expected}, not ${describeNode(n)}`);
  };
  switch (s.kind) {
    case 'string':
      expect(node.type === 'string', 'a string');
      return (node as { value: string }).value;
    case 'bool':
      expect(node.type === 'boolean', 'a boolean (true or false, without quotes)');
      return (node as { value: boolean }).value;
    case 'int':
      expect(node.type === 'number' && Number.isInteger(node.value), 'an integer');
      return (node as { value: number }).value;
    case 'bytes':
      if (node.type === 'number' && Number.isInteger(node.value) && node.value >= 0) return node.value;
      expect(node.type === 'string', 'a size such as "64M" or a number of bytes');
      try {
        return parseBytes((node as { value: string }).value);
      } catch (e) {
        throw new ValueError(`"${fileKey}" (${where(node)}): ${(e as Error).message}`);
      }
    case 'list': {
      expect(node.type === 'array', 'an array of strings');
      const items = (node as { items: JsonNode[] }).items;
      return items.map((n, i) => (n.type === 'string' ? n.value : item(n, 'a string', `[${i}]`)));
    }
    case 'map': {
      expect(node.type === 'object', 'an object of strings');
      const m: Record<string, string> = {};
      for (const e of (node as { entries: { key: string; value: JsonNode }[] }).entries) {
        m[e.key] = e.value.type === 'string' ? e.value.value : item(e.value, 'a string', `.${e.key}`);
      }
      return m;
    }
    case 'mapmap': {
      expect(node.type === 'object', 'an object of objects of strings');
      const m: Record<string, Record<string, string>> = {};
      for (const e of (node as { entries: { key: string; value: JsonNode }[] }).entries) {
        if (e.value.type !== 'object') item(e.value, 'an object of strings', `.${e.key}`);
        const inner: Record<string, string> = {};
        for (const ie of (e.value as { entries: { key: string; value: JsonNode }[] }).entries) {
          inner[ie.key] =
            ie.value.type === 'string' ? ie.value.value : item(ie.value, 'a string', `.${e.key}.${ie.key}`);
        }
        m[e.key] = inner;
      }
      return m;
    }
    case 'maplist': {
      expect(
        node.type === 'object',
        'an object of arrays of strings, such as {"registry.example.com:5000": ["https://mirror.example.com"]}',
      );
      const m: Record<string, string[]> = {};
      for (const e of (node as { entries: { key: string; value: JsonNode }[] }).entries) {
        if (e.value.type !== 'array') item(e.value, 'an array of strings', `.${e.key}`);
        m[e.key] = (e.value as { items: JsonNode[] }).items.map((n, i) =>
          n.type === 'string' ? n.value : item(n, 'a string', `.${e.key}[${i}]`),
        );
      }
      return m;
    }
    case 'features': {
      expect(node.type === 'object', 'an object of booleans');
      const m: Record<string, boolean> = {};
      for (const e of (node as { entries: { key: string; value: JsonNode }[] }).entries) {
        m[e.key] = e.value.type === 'boolean' ? e.value.value : item(e.value, 'a boolean', `.${e.key}`);
      }
      return m;
    }
    case 'object':
      expect(node.type === 'object', 'an object');
      return toPlain(node);
    case 'ulimits': {
      expect(node.type === 'object', 'an object such as {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}');
      const m: Record<string, Ulimit> = {};
      for (const e of (node as { entries: { key: string; value: JsonNode }[] }).entries) {
        const at = `.${e.key}`;
        if (e.value.type !== 'object') item(e.value, 'an object with Name, Soft and Hard', at);
        const f = fieldsCI(e.value, fileKey + at, ['name', 'soft', 'hard']);
        const name =
          f.name === undefined
            ? e.key
            : f.name.type === 'string'
              ? f.name.value
              : item(f.name, 'a string', `${at}.Name`);
        if (name !== e.key) {
          throw new ValueError(`"${fileKey}${at}" has Name ${JSON.stringify(name)}; the key and the Name must match`);
        }
        const num = (n: JsonNode | undefined, fname: string) =>
          n === undefined
            ? item(e.value, `an object with ${fname}`, at)
            : n.type === 'number' && Number.isInteger(n.value)
              ? n.value
              : item(n, 'an integer', `${at}.${fname}`);
        try {
          m[e.key] = checkUlimit({ name, soft: num(f.soft, 'Soft'), hard: num(f.hard, 'Hard') });
        } catch (err) {
          if (err instanceof ValueError && !err.message.startsWith('"')) {
            throw new ValueError(`"${fileKey}${at}": ${err.message}`);
          }
          throw err;
        }
      }
      return m;
    }
    case 'runtimes': {
      expect(node.type === 'object', 'an object such as {"name": {"path": "/usr/bin/runc"}}');
      const m: Record<string, Runtime> = {};
      for (const e of (node as { entries: { key: string; value: JsonNode }[] }).entries) {
        const at = `.${e.key}`;
        if (e.value.type !== 'object') item(e.value, 'an object with "path"', at);
        const f = fieldsCI(e.value, fileKey + at, ['path', 'runtimeargs', 'runtimetype', 'options']);
        const rt: Runtime = {};
        if (f.path) rt.path = f.path.type === 'string' ? f.path.value : item(f.path, 'a string', `${at}.path`);
        if (f.runtimetype) {
          rt.runtimeType =
            f.runtimetype.type === 'string'
              ? f.runtimetype.value
              : item(f.runtimetype, 'a string', `${at}.runtimeType`);
        }
        if (f.runtimeargs) {
          if (f.runtimeargs.type !== 'array') item(f.runtimeargs, 'an array of strings', `${at}.runtimeArgs`);
          rt.runtimeArgs = (f.runtimeargs as { items: JsonNode[] }).items.map((n, i) =>
            n.type === 'string' ? n.value : item(n, 'a string', `${at}.runtimeArgs[${i}]`),
          );
        }
        if (f.options) {
          if (f.options.type !== 'object') item(f.options, 'an object', `${at}.options`);
          rt.options = toPlain(f.options) as Record<string, unknown>;
        }
        if (!rt.path && !rt.runtimeType) {
          throw new ValueError(`"${fileKey}${at}" (${where(e.value)}) needs "path" (or "runtimeType")`);
        }
        m[e.key] = rt;
      }
      return m;
    }
    case 'pools': {
      expect(node.type === 'array', 'an array such as [{"base": "10.10.0.0/16", "size": 24}]');
      return (node as { items: JsonNode[] }).items.map((n, i) => {
        const at = `[${i}]`;
        if (n.type !== 'object') item(n, 'an object with base and size', at);
        const f = fieldsCI(n, fileKey + at, ['base', 'size']);
        const base = f.base?.type === 'string' ? f.base.value : item(f.base ?? n, 'a string', `${at}.base`);
        const size =
          f.size?.type === 'number' && Number.isInteger(f.size.value)
            ? f.size.value
            : item(f.size ?? n, 'an integer', `${at}.size`);
        try {
          return checkAddressPool({ base, size });
        } catch (err) {
          throw new ValueError(`"${fileKey}${at}": ${(err as Error).message}`);
        }
      });
    }
  }
}

/** Go's encoding/json matches struct fields case-insensitively; so do we. Unknown fields are refused. */
function fieldsCI(node: JsonNode, at: string, known: string[]): Record<string, JsonNode | undefined> {
  const out: Record<string, JsonNode | undefined> = {};
  for (const e of (node as { entries: JsonEntry[] }).entries) {
    const k = e.key.toLowerCase();
    if (!known.includes(k)) {
      throw new ValueError(
        `"${at}" has an unknown field "${e.key}" (line ${e.keyPos.line}, column ${e.keyPos.column})`,
      );
    }
    out[k] = e.value;
  }
  return out;
}

// ---- semantic validation (of the merged configuration) -------------------

/** dockerd's Validate() plus verifyDaemonSettings(), on a merged configuration. Throws ValueError. */
export function validateConfig(c: DaemonConfig, warn: (m: string) => void = () => {}): void {
  if (!LOG_LEVELS.includes(c.logLevel.toLowerCase())) throw new ValueError(`invalid logging level: ${c.logLevel}`);
  if (c.logFormat !== 'text' && c.logFormat !== 'json') throw new ValueError(`invalid log format: ${c.logFormat}`);
  for (const d of c.dns) validateIPAddress(d);
  for (const d of c.dnsSearch) validateDNSSearch(d);
  for (const l of c.labels) validateLabel(l);
  if (c.mtu < 0) throw new ValueError(`invalid default MTU: ${c.mtu}`);
  if (c.maxConcurrentDownloads <= 0)
    throw new ValueError(`invalid max concurrent downloads: ${c.maxConcurrentDownloads}`);
  if (c.maxConcurrentUploads <= 0) throw new ValueError(`invalid max concurrent uploads: ${c.maxConcurrentUploads}`);
  if (c.maxDownloadAttempts <= 0) throw new ValueError(`invalid max download attempts: ${c.maxDownloadAttempts}`);
  if (c.shutdownTimeout < -1) {
    throw new ValueError(`invalid shutdown-timeout: ${c.shutdownTimeout} (seconds, or -1 to wait forever)`);
  }
  if (c.networkDiagnosticPort < 0 || c.networkDiagnosticPort > 65535) {
    throw new ValueError(
      `invalid network-diagnostic-port (${c.networkDiagnosticPort}): value must be between 0 and 65535`,
    );
  }
  for (const r of c.nodeGenericResources) validateGenericResource(r);
  for (const o of c.execOpts) validateExecOpt(o);
  for (const o of c.storageOpts) validateKeyValueOpt(o);
  for (const m of c.registryMirrors) validateMirror(m);
  for (const [host, mirrors] of Object.entries(c.berthRegistryMirrors)) validateRegistryMirrors(host, mirrors);
  for (const r of c.insecureRegistries) normalizeRegistryEntry(r, 'insecure registry', warn);
  for (const r of c.allowNondistributableArtifacts) {
    normalizeRegistryEntry(r, 'allow-nondistributable-artifacts registry', warn);
  }
  for (const u of Object.values(c.defaultUlimits)) checkUlimit(u);
  for (const p of c.defaultAddressPools) checkAddressPool(p);

  // hosts: syntax, and the same address twice
  const seen = new Map<string, string>();
  for (const h of c.hosts) {
    const url = parseDaemonHost(h, c.tls).url;
    const prev = seen.get(url);
    if (prev !== undefined)
      throw new ValueError(`duplicate host: ${JSON.stringify(h)} and ${JSON.stringify(prev)} both listen on ${url}`);
    seen.set(url, h);
  }

  // runtimes
  if (STOCK_RUNTIME in c.runtimes) throw new ValueError(`runtime name '${STOCK_RUNTIME}' is reserved`);
  if (!BUILTIN_RUNTIMES.includes(c.defaultRuntime) && !(c.defaultRuntime in c.runtimes)) {
    throw new ValueError(`specified default runtime '${c.defaultRuntime}' does not exist`);
  }

  if (c.defaultIpcMode !== 'private' && c.defaultIpcMode !== 'shareable') {
    const known =
      ['', 'host', 'none', 'private', 'shareable'].includes(c.defaultIpcMode) || /^container:.+/.test(c.defaultIpcMode);
    if (!known)
      throw new ValueError(`default IPC mode setting (${c.defaultIpcMode}) is invalid; use "shareable" or "private"`);
    throw new ValueError(
      `IPC mode "${c.defaultIpcMode}" is not supported as default value; use "shareable" or "private"`,
    );
  }
  if (c.defaultCgroupnsMode !== 'host' && c.defaultCgroupnsMode !== 'private') {
    throw new ValueError(
      `default cgroup namespace mode (${c.defaultCgroupnsMode}) is invalid; use "host" or "private"`,
    );
  }
  if (c.apiCorsHeader !== '') {
    warn('the "api-cors-header" option is deprecated; use a reverse proxy if you need CORS headers');
  }

  // networking (daemon_unix.go verifyDaemonSettings)
  if (c.bridge !== '' && c.bip !== '') {
    throw new ValueError('You specified -b & --bip, mutually exclusive options. Please specify only one');
  }
  if (!c.iptables && !c.icc) {
    throw new ValueError(
      'You specified --iptables=false with --icc=false. ICC=false uses iptables to function. Please set --icc or --iptables to true',
    );
  }
  if (c.bip !== '' && !isCIDR(c.bip, 4))
    throw new ValueError(`invalid bip: ${c.bip} (expected an IPv4 CIDR such as 172.17.0.1/16)`);
  if (c.bip6 !== '' && !isCIDR(c.bip6, 6)) throw new ValueError(`invalid bip6: ${c.bip6} (expected an IPv6 CIDR)`);
  if (c.fixedCidr !== '' && !isCIDR(c.fixedCidr, 4)) throw new ValueError(`invalid fixed-cidr: ${c.fixedCidr}`);
  if (c.fixedCidrV6 !== '' && !isCIDR(c.fixedCidrV6, 6))
    throw new ValueError(`invalid fixed-cidr-v6: ${c.fixedCidrV6}`);
  for (const [k, v] of [
    ['default-gateway', c.defaultGateway],
    ['default-gateway-v6', c.defaultGatewayV6],
    ['ip', c.ip],
    ['host-gateway-ip', c.hostGatewayIp],
  ] as const) {
    if (v !== '') {
      try {
        validateIPAddress(v);
      } catch {
        throw new ValueError(`invalid ${k}: ${v} is not an ip address`);
      }
    }
  }
  if (c.metricsAddr !== '') {
    try {
      const h = parseDaemonHost(`tcp://${c.metricsAddr}`);
      if (!c.metricsAddr.includes(':')) throw new ValueError('');
      void h;
    } catch {
      throw new ValueError(`invalid metrics-addr: ${c.metricsAddr} (expected host:port, such as 127.0.0.1:9323)`);
    }
  }
  if (c.cgroupParent !== '' && c.execOpts.some((o) => /^native\.cgroupdriver\s*=\s*systemd$/i.test(o))) {
    if (c.cgroupParent.length <= 6 || !c.cgroupParent.endsWith('.slice')) {
      throw new ValueError('cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"');
    }
  }
}

/** Labels with the same key and different values are an error; identical duplicates collapse. */
function conflictFreeLabels(labels: string[]): string[] {
  const m = new Map<string, string>();
  for (const l of labels) {
    const i = l.indexOf('=');
    if (i < 0) continue;
    const k = l.slice(0, i);
    const v = l.slice(i + 1);
    const prev = m.get(k);
    if (prev !== undefined && prev !== v) throw new ValueError(`conflict labels for ${k}=${v} and ${k}=${prev}`);
    m.set(k, v);
  }
  return [...m].map(([k, v]) => `${k}=${v}`);
}

// ---- merge ------------------------------------------------------------------

export type Source = 'default' | 'flag' | 'file';

export interface LoadResult {
  config: DaemonConfig;
  /** where each setting (daemon.json key) came from */
  sources: Record<string, Source>;
  /** deprecations and normalisations to log at warn level */
  warnings: string[];
  /** the configuration file that was read, if any */
  configFile?: string;
}

/**
 * Merges defaults, daemon.json text (undefined when there is no file) and
 * parsed flags, and validates the result. Throws BerthError('invalid-argument').
 */
export function resolveDaemonConfig(
  parsed: ParsedFlags,
  fileText: string | undefined,
  configFile?: string,
): LoadResult {
  const fileLabel = configFile ?? parsed.configFile ?? DEFAULT_CONFIG_FILE;
  const wrapFile = (msg: string) => `unable to configure the berth daemon with file ${fileLabel}: ${msg}`;
  const warnings = [...parsed.warnings];

  let file: FileConfig = { values: {}, nodes: new Map(), fileKeyName: new Map(), warnings: [] };
  if (fileText !== undefined) {
    try {
      file = parseDaemonJson(fileText);
    } catch (e) {
      if (e instanceof BerthError) throw invalid(wrapFile(e.message));
      throw e;
    }
    warnings.push(...file.warnings);

    // the same directive from both sources (runtimes merge, as in dockerd)
    const conflicts: string[] = [];
    for (const key of SETTINGS.map((s) => s.key)) {
      if (!parsed.setKeys.has(key) || !file.nodes.has(key) || key === 'runtimes') continue;
      const s = BY_KEY.get(key)!;
      let flagV = flagValueString(s, parsed.flags);
      let fileV = goFormat(toPlain(file.nodes.get(key)!));
      if (key === 'http-proxy' || key === 'https-proxy') {
        flagV = maskCredentials(flagV);
        fileV = maskCredentials(fileV);
      }
      const name = file.fileKeyName.get(key) === 'graph' ? 'graph' : key;
      conflicts.push(`${name}: (from flag: ${flagV}, from file: ${fileV})`);
    }
    if (conflicts.length > 0) {
      throw invalid(
        wrapFile(
          `the following directives are specified both as a flag and in the configuration file: ${conflicts.join(', ')}`,
        ),
      );
    }
  }

  const sources: Record<string, Source> = {};
  const merged: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const fromFlag = (parsed.flags as Record<string, unknown>)[s.prop];
    const fromFile = (file.values as Record<string, unknown>)[s.prop];
    if (s.kind === 'runtimes' && fromFlag !== undefined && fromFile !== undefined) {
      const a = fromFile as Record<string, Runtime>;
      const b = fromFlag as Record<string, Runtime>;
      const dup = Object.keys(b).find((k) => k in a);
      if (dup) throw invalid(wrapFile(`runtime '${dup}' was already defined`));
      merged[s.prop] = { ...a, ...b };
      sources[s.key] = 'flag';
    } else if (parsed.setKeys.has(s.key) && fromFlag !== undefined) {
      merged[s.prop] = structuredClone(fromFlag);
      sources[s.key] = 'flag';
    } else if (fromFile !== undefined) {
      merged[s.prop] = structuredClone(fromFile);
      sources[s.key] = 'file';
    } else {
      merged[s.prop] = structuredClone(DEFAULTS[s.prop]);
      sources[s.key] = 'default';
    }
  }
  const cfg = merged as unknown as DaemonConfig;

  // -H / hosts given as an empty list means the default socket, as in dockerd
  if (cfg.hosts.length === 0) cfg.hosts = [DEFAULT_HOST];
  // --tlsverify (either value) turns TLS on; TLS on verifies clients unless told not to (dockerd 23+)
  if (sources.tlsverify !== 'default') cfg.tls = true;
  else if (cfg.tls) cfg.tlsverify = true;

  try {
    validateConfig(cfg, (m) => warnings.push(m));
    cfg.labels = conflictFreeLabels(cfg.labels);
    // keep the normalised registry entries (scheme stripped, index.docker.io → docker.io)
    cfg.insecureRegistries = cfg.insecureRegistries.map((r) =>
      normalizeRegistryEntry(r, 'insecure registry', () => {}),
    );
    cfg.allowNondistributableArtifacts = cfg.allowNondistributableArtifacts.map((r) =>
      normalizeRegistryEntry(r, 'allow-nondistributable-artifacts registry', () => {}),
    );
  } catch (e) {
    if (e instanceof ValueError) {
      throw invalid(
        fileText !== undefined
          ? wrapFile(`merged configuration validation from file and command line flags failed: ${e.message}`)
          : e.message,
      );
    }
    throw e;
  }
  return { config: deepFreeze(cfg), sources, warnings, configFile: fileText !== undefined ? fileLabel : undefined };
}

/**
 * Reads the configuration file. A missing file is fine when it is the default
 * one (returns undefined) and an error when it was named with --config-file.
 */
export function readConfigFile(configFile: string, explicit: boolean): string | undefined {
  try {
    return fs.readFileSync(configFile, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return undefined;
    const reason =
      code === 'ENOENT' ? 'no such file or directory' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    throw invalid(`unable to configure the berth daemon with file ${configFile}: open ${configFile}: ${reason}`);
  }
}

/** Parses argv, reads the config file and returns the merged, validated, frozen configuration. */
export interface LoadOptions {
  argv: readonly string[];
  /** the default configuration file (DEFAULT_CONFIG_FILE); --config-file overrides it */
  configFile?: string;
  /** a missing configFile is an error even without --config-file */
  configFileRequired?: boolean;
}

export function loadDaemonConfigDetailed(opts: LoadOptions): LoadResult & { flags: ParsedFlags } {
  const flags = parseFlags(opts.argv);
  const explicit = flags.configFile !== undefined || opts.configFileRequired === true;
  const configFile = flags.configFile ?? opts.configFile ?? DEFAULT_CONFIG_FILE;
  const text = readConfigFile(configFile, explicit);
  return { ...resolveDaemonConfig(flags, text, configFile), flags };
}

export function loadDaemonConfig(opts: LoadOptions): DaemonConfig {
  return loadDaemonConfigDetailed(opts).config;
}

/** The level the logger should use: --debug forces debug, as in dockerd. */
export function effectiveLogLevel(cfg: DaemonConfig): string {
  return cfg.debug ? 'debug' : cfg.logLevel.toLowerCase();
}

// ---- reload -----------------------------------------------------------------

export interface ReloadResult {
  /** the configuration to swap in (current with the reloadable keys replaced); frozen */
  next: DaemonConfig;
  /** reloadable keys whose value changed (applied) */
  changed: string[];
  /** keys whose value in the new file differs but that only take effect after a restart (not applied) */
  needRestart: string[];
  warnings: string[];
}

function same(a: unknown, b: unknown): boolean {
  return goFormat(a) === goFormat(b) && JSON.stringify(a) === JSON.stringify(b);
}

/**
 * SIGHUP: builds the whole configuration again from the startup flags and the
 * new file text, validates that full result, and only then takes the
 * reloadable keys from it. Nothing is partially applied: on any error this
 * throws and `current` stays the live configuration. A key removed from the
 * file reverts to its flag or default value.
 */
export function reloadDaemonConfig(
  current: DaemonConfig,
  argvFlags: ParsedFlags,
  fileText: string | undefined,
  opts: { configFile?: string } = {},
): ReloadResult {
  const fresh = resolveDaemonConfig(argvFlags, fileText, opts.configFile);
  const next: Record<string, unknown> = structuredClone(current) as unknown as Record<string, unknown>;
  const changed: string[] = [];
  const needRestart: string[] = [];
  for (const s of SETTINGS) {
    const before = current[s.prop];
    const after = fresh.config[s.prop];
    if (same(before, after)) continue;
    if (s.reload) {
      next[s.prop] = structuredClone(after);
      changed.push(s.key);
    } else {
      needRestart.push(s.key);
    }
  }
  const cfg = next as unknown as DaemonConfig;
  const warnings = [...fresh.warnings];
  try {
    // the merged result (live non-reloadable settings + new reloadable ones) must be valid too
    validateConfig(cfg, () => {});
  } catch (e) {
    if (e instanceof ValueError) throw invalid(`reload refused, the configuration is unchanged: ${e.message}`);
    throw e;
  }
  return { next: deepFreeze(cfg), changed, needRestart, warnings };
}

export { RELOADABLE_KEYS };

// ---- not supported yet --------------------------------------------------------

/**
 * The settings (daemon.json keys) set to something other than their default
 * whose key is not in `supported`: berthd should refuse to start with them.
 */
export function unsupportedSettings(cfg: DaemonConfig, supported: Iterable<string>): string[] {
  const ok = new Set(supported);
  const out: string[] = [];
  for (const s of SETTINGS) {
    if (ok.has(s.key)) continue;
    if (!same(cfg[s.prop], DEFAULTS[s.prop])) out.push(s.key);
  }
  return out;
}

/** Throws BerthError('not-implemented') naming every unsupported setting. */
export function assertSupported(cfg: DaemonConfig, supported: Iterable<string>): void {
  const bad = unsupportedSettings(cfg, supported);
  if (bad.length === 0) return;
  const list = bad.map((k) => `${k} (${BY_KEY.get(k)?.flag ? `--${BY_KEY.get(k)!.flag}` : 'daemon.json only'})`);
  throw new BerthError(
    'not-implemented',
    `berthd does not support ${bad.length === 1 ? 'this setting' : 'these settings'} yet: ${list.join(', ')}; ` +
      'remove them from the command line and daemon.json, or set them to their defaults',
  );
}
