// berthd's command line, parsed the way dockerd's (cobra/pflag) parses it:
//   -H a -H b, -Ha, -H=a, --host a, --host=a, -D, -Dl debug, --icc=false, --
// Errors carry pflag's and cobra's wording.
import { BerthError } from '../errors/index.js';
import { BY_FLAG, type DaemonConfig, DEFAULT_CONFIG_FILE, DEFAULTS, SETTINGS, type Setting } from './spec.js';
import {
  goFormat,
  parseAddressPool,
  parseBytes,
  parseGoBool,
  parseGoInt,
  parseRuntimeFlag,
  parseUlimit,
  splitKeyValue,
  ValueError,
  validateDNSSearch,
  validateExecOpt,
  validateGenericResource,
  validateHost,
  validateIndexName,
  validateIPAddress,
  validateKeyValueOpt,
  validateLabel,
  validateMirror,
} from './values.js';

export const PROGRAM = 'berthd';

export interface ParsedFlags {
  /** settings given on the command line, already typed */
  flags: Partial<DaemonConfig>;
  /** daemon.json keys of the settings given on the command line */
  setKeys: Set<string>;
  help?: boolean;
  version?: boolean;
  validate?: boolean;
  /** --config-file, when given */
  configFile?: string;
  /** -g/--graph was used (deprecated alias of --data-root) */
  graphUsed?: boolean;
  /** warnings to log (deprecated flags) */
  warnings: string[];
}

/** Flags that are not daemon settings. */
interface MetaFlag {
  name: string;
  short?: string;
  bool: boolean;
  help: string;
  hidden?: boolean;
  defaultText?: string;
}
const META: MetaFlag[] = [
  {
    name: 'config-file',
    bool: false,
    help: 'Daemon configuration file',
    defaultText: `(default "${DEFAULT_CONFIG_FILE}")`,
  },
  { name: 'graph', short: 'g', bool: false, help: 'Root of the Docker runtime', hidden: true },
  { name: 'help', short: 'h', bool: true, help: 'Print usage' },
  { name: 'validate', bool: true, help: 'Validate daemon configuration and exit' },
  { name: 'version', short: 'v', bool: true, help: 'Print version information and quit' },
];
const META_BY_NAME = new Map(META.map((m) => [m.name, m]));

const SHORT = new Map<string, string>();
for (const s of SETTINGS) if (s.short && s.flag) SHORT.set(s.short, s.flag);
for (const m of META) if (m.short) SHORT.set(m.short, m.name);

const LIST_VALIDATORS: Record<string, (v: string) => string> = {
  hosts: validateHost,
  labels: validateLabel,
  dns: validateIPAddress,
  'dns-search': validateDNSSearch,
  'registry-mirrors': validateMirror,
  'insecure-registries': validateIndexName,
  'allow-nondistributable-artifacts': validateIndexName,
  'node-generic-resources': validateGenericResource,
  'exec-opts': validateExecOpt,
  'storage-opts': validateKeyValueOpt,
};
const IP_FLAGS = new Set(['default-gateway', 'default-gateway-v6', 'ip', 'host-gateway-ip']);

function displayName(name: string): string {
  const s = [...SHORT.entries()].find(([, long]) => long === name)?.[0];
  return s ? `-${s}, --${name}` : `--${name}`;
}

function isBool(name: string): boolean {
  const s = BY_FLAG.get(name);
  if (s) return s.kind === 'bool';
  return META_BY_NAME.get(name)?.bool ?? false;
}

const fail = (msg: string): never => {
  throw new BerthError('invalid-argument', msg);
};

/** Parses berthd's arguments (without the program name). */
export function parseFlags(argv: readonly string[]): ParsedFlags {
  const out: ParsedFlags = { flags: {}, setKeys: new Set(), warnings: [] };
  const acc = out.flags as Record<string, unknown>;
  const positional: string[] = [];
  let sawDataRoot = false;

  const apply = (name: string, value: string | undefined) => {
    const meta = META_BY_NAME.get(name);
    if (meta) {
      if (meta.bool) {
        const b = value === undefined ? true : boolOrFail(name, value);
        if (name === 'help') out.help = b;
        else if (name === 'version') out.version = b;
        else out.validate = b;
      } else if (name === 'config-file') {
        out.configFile = value ?? '';
      } else {
        // -g/--graph: deprecated alias of --data-root
        if (sawDataRoot) fail(`cannot specify both "--graph" and "--data-root" option`);
        out.graphUsed = true;
        acc.dataRoot = value;
        out.setKeys.add('data-root');
        if (!out.warnings.some((w) => w.includes('--graph'))) {
          out.warnings.push('The "-g / --graph" flag is deprecated. Please use "--data-root" instead');
        }
      }
      return;
    }
    const s = BY_FLAG.get(name)!;
    if (s.key === 'data-root') {
      if (out.graphUsed) fail(`cannot specify both "--graph" and "--data-root" option`);
      sawDataRoot = true;
    }
    try {
      setValue(s, value, acc);
    } catch (e) {
      if (e instanceof ValueError) {
        fail(
          `invalid argument ${JSON.stringify(value ?? '')} for ${JSON.stringify(displayName(name))} flag: ${e.message}`,
        );
      }
      throw e;
    }
    out.setKeys.add(s.key);
    if (s.deprecated) out.warnings.push(`Flag --${name} has been deprecated, ${s.deprecated}`);
  };

  const boolOrFail = (name: string, v: string): boolean => {
    try {
      return parseGoBool(v);
    } catch (e) {
      return fail(
        `invalid argument ${JSON.stringify(v)} for ${JSON.stringify(displayName(name))} flag: ${(e as Error).message}`,
      );
    }
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const body = arg.slice(2);
      const eq = body.indexOf('=');
      const name = eq < 0 ? body : body.slice(0, eq);
      if (!BY_FLAG.has(name) && !META_BY_NAME.has(name)) fail(`unknown flag: --${name}`);
      let value: string | undefined = eq < 0 ? undefined : body.slice(eq + 1);
      if (value === undefined && !isBool(name)) {
        if (i + 1 >= argv.length) fail(`flag needs an argument: --${name}`);
        value = argv[++i];
      }
      apply(name, value);
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // a cluster of shorthands: -D, -Dl debug, -Hunix://x, -H=unix://x
      let j = 1;
      while (j < arg.length) {
        const c = arg[j]!;
        const name = SHORT.get(c);
        if (!name) fail(`unknown shorthand flag: '${c}' in ${arg}`);
        const rest = arg.slice(j + 1);
        if (isBool(name!)) {
          if (rest.startsWith('=')) {
            apply(name!, rest.slice(1));
            break;
          }
          apply(name!, undefined);
          j++;
          continue;
        }
        let value: string;
        if (rest.startsWith('=')) value = rest.slice(1);
        else if (rest !== '') value = rest;
        else {
          if (i + 1 >= argv.length) fail(`flag needs an argument: '${c}' in -${c}`);
          value = argv[++i]!;
        }
        apply(name!, value);
        break;
      }
      continue;
    }
    positional.push(arg);
  }
  if (positional.length > 0) fail(`"${PROGRAM}" accepts no arguments.\nSee '${PROGRAM} --help'.`);
  return out;
}

/** Adds one flag occurrence to the accumulated settings. Throws ValueError. */
function setValue(s: Setting, value: string | undefined, acc: Record<string, unknown>): void {
  const p = s.prop;
  switch (s.kind) {
    case 'bool':
      acc[p] = value === undefined ? true : parseGoBool(value);
      return;
    case 'int':
      acc[p] = parseGoInt(value ?? '');
      return;
    case 'bytes':
      acc[p] = parseBytes(value ?? '');
      return;
    case 'string': {
      const v = value ?? '';
      if (IP_FLAGS.has(s.key) && v !== '') {
        try {
          validateIPAddress(v);
        } catch {
          throw new ValueError(`invalid string being converted to IP address: ${v}`);
        }
      }
      acc[p] = v;
      return;
    }
    case 'list': {
      const validate = LIST_VALIDATORS[s.key];
      const v = validate ? validate(value ?? '') : (value ?? '');
      const list = (acc[p] as string[] | undefined) ?? [];
      list.push(s.key === 'registry-mirrors' ? (value ?? '') : v);
      acc[p] = list;
      return;
    }
    case 'map': {
      const [k, v] = splitKeyValue(value ?? '');
      const m = (acc[p] as Record<string, string> | undefined) ?? {};
      m[k] = v;
      acc[p] = m;
      return;
    }
    case 'mapmap': {
      const [outer, inner] = splitKeyValue(value ?? '');
      const [k, v] = splitKeyValue(inner);
      if (outer === '' || k === '') throw new ValueError(`invalid key value pair format in driver options`);
      const m = (acc[p] as Record<string, Record<string, string>> | undefined) ?? {};
      m[outer] = { ...(m[outer] ?? {}), [k]: v };
      acc[p] = m;
      return;
    }
    case 'ulimits': {
      const u = parseUlimit(value ?? '');
      const m = (acc[p] as Record<string, unknown> | undefined) ?? {};
      m[u.name] = u;
      acc[p] = m;
      return;
    }
    case 'runtimes': {
      const [name, rt] = parseRuntimeFlag(value ?? '');
      const m = (acc[p] as Record<string, unknown> | undefined) ?? {};
      if (name in m) throw new ValueError(`runtime '${name}' was already defined`);
      m[name] = rt;
      acc[p] = m;
      return;
    }
    case 'pools': {
      const list = (acc[p] as unknown[] | undefined) ?? [];
      list.push(parseAddressPool(value ?? ''));
      acc[p] = list;
      return;
    }
    default:
      throw new ValueError(`--${s.flag} cannot be set on the command line`);
  }
}

function defaultText(s: Setting): string {
  const d = DEFAULTS[s.prop] as unknown;
  switch (s.kind) {
    case 'bool':
      return d ? '(default true)' : '';
    case 'int':
      return d ? `(default ${d})` : '';
    case 'string':
      return d ? `(default ${JSON.stringify(d)})` : '';
    case 'bytes':
      return `(default ${formatBytes(d as number)})`;
    case 'map':
    case 'mapmap':
      return '(default map[])';
    case 'runtimes':
    case 'ulimits':
      return '(default [])';
    default:
      return s.key === 'hosts' ? '' : '';
  }
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1 && v % 1024 === 0) {
    v /= 1024;
    u++;
  }
  return `${v}${units[u]}`;
}

function typeWord(s: Setting): string {
  if (s.flagType) return s.flagType;
  switch (s.kind) {
    case 'string':
      return 'string';
    case 'int':
      return 'int';
    case 'bytes':
      return 'bytes';
    case 'list':
      return 'list';
    case 'map':
      return 'map';
    default:
      return '';
  }
}

/** `berthd --help`, laid out as pflag lays out dockerd's. */
export function usage(): string {
  const rows: { name: string; left: string; help: string }[] = [];
  for (const s of SETTINGS) {
    if (!s.flag || s.hidden || s.deprecated) continue;
    const short = s.short ? `-${s.short}, ` : '    ';
    const tw = s.kind === 'bool' ? '' : ` ${typeWord(s)}`;
    const d = defaultText(s);
    rows.push({ name: s.flag, left: `  ${short}--${s.flag}${tw}`, help: d ? `${s.help} ${d}` : s.help });
  }
  for (const m of META) {
    if (m.hidden) continue;
    const short = m.short ? `-${m.short}, ` : '    ';
    const tw = m.bool ? '' : ' string';
    rows.push({
      name: m.name,
      left: `  ${short}--${m.name}${tw}`,
      help: m.defaultText ? `${m.help} ${m.defaultText}` : m.help,
    });
  }
  rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const width = Math.max(...rows.map((r) => r.left.length));
  const lines = rows.map((r) => `${r.left.padEnd(width)}   ${r.help}`);
  return `Usage:\t${PROGRAM} [OPTIONS]\n\nA self-sufficient runtime for containers.\n\nOptions:\n${lines.join('\n')}\n`;
}

/** The command-line value of a setting as pflag's Value.String() prints it. */
export function flagValueString(s: Setting, flags: Partial<DaemonConfig>): string {
  const v = flags[s.prop] as unknown;
  if (s.kind === 'ulimits') {
    return goFormat(
      Object.values(v as Record<string, { name: string; soft: number; hard: number }>).map(
        (u) => `${u.name}=${u.soft}:${u.hard}`,
      ),
    );
  }
  if (s.kind === 'runtimes') {
    return goFormat(Object.entries(v as Record<string, { path?: string }>).map(([k, r]) => `${k}=${r.path ?? ''}`));
  }
  if (s.kind === 'pools') {
    return goFormat((v as { base: string; size: number }[]).map((p) => `base=${p.base},size=${p.size}`));
  }
  return goFormat(v);
}
