// Log driver settings for a container, as the shim needs them. Docker's
// json-file writes forever unless max-size is set (moby#27957: users lose
// disks to it). berth rotates by default: when neither max-size nor max-file is
// given, json-file uses the `local` driver's defaults, 20 MiB x 5 files. Any
// explicit max-size/max-file takes Docker's meaning (max-size alone keeps
// max-file 1, a truncate-in-place); `max-size: -1` (berth only) turns rotation off.
import { invalidArgument, notImplemented } from '../errors/index.js';
import { goJsonString } from '../oci/index.js';
import { encodeLogAttrs } from './logs/local.js';

export const DEFAULT_LOG_MAX_SIZE = 20 * 1024 * 1024;
export const DEFAULT_LOG_MAX_FILE = 5;
export const LOG_DRIVERS = ['json-file', 'local', 'none'] as const;

export interface ShimLogSettings {
  driver: 'json-file' | 'local' | 'none';
  /** `<container dir>/<id>-json.log` for json-file, `<container dir>/local-logs/container.log` for local. */
  path?: string;
  /** local: gzip rotated files (berthd does it, see logs/local.ts compressRotated). */
  compress?: boolean;
  /** local: the LogEntry attrs fields (6) appended to every entry, hex (logs/local.ts encodeLogAttrs). */
  attrsPb?: string;
  /** Bytes; -1 means never rotate. */
  maxSize: number;
  maxFile: number;
  /** The JSON object written as "attrs" in every entry (labels, env, tag), or undefined. */
  attrs?: string;
}

/** What the extra attributes and the tag are computed from. */
export interface LogContext {
  id: string;
  name?: string;
  imageId?: string;
  imageName?: string;
  labels?: Record<string, string>;
  env?: string[];
  daemonName?: string;
}

/** go-units FromHumanSize: decimal multipliers (k = 1000), optional i/b suffixes. */
export function parseHumanSize(s: string): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s.trim());
  if (!m) throw invalidArgument(`invalid size: '${s}'`);
  const mult: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 };
  return Math.floor(Number(m[1]) * (m[2] ? mult[m[2].toLowerCase()]! : 1));
}

const JSON_FILE_OPTS = new Set([
  'max-file',
  'max-size',
  'compress',
  'labels',
  'labels-regex',
  'env',
  'env-regex',
  'tag',
]);

/** Validates log-opts for a driver with Docker's messages. */
export function validateLogOpts(driver: string, opts: Record<string, string>): void {
  if (driver === 'none') {
    const k = Object.keys(opts)[0];
    if (k) throw invalidArgument(`unknown log opt '${k}' for none log driver`);
    return;
  }
  if (driver === 'local') {
    for (const k of Object.keys(opts)) {
      if (!JSON_FILE_OPTS.has(k)) throw invalidArgument(`unknown log opt '${k}' for log driver local`);
    }
    return;
  }
  if (driver !== 'json-file') throw invalidArgument(`logger: no log driver named '${driver}' is registered`);
  for (const k of Object.keys(opts)) {
    if (!JSON_FILE_OPTS.has(k)) throw invalidArgument(`unknown log opt '${k}' for json-file log driver`);
  }
}

/** Go's json.Marshal of a map[string]string: sorted keys, HTML-safe escaping. */
function goJsonMap(m: Record<string, string>): string {
  const keys = Object.keys(m).sort();
  return `{${keys.map((k) => `${goJsonString(k)}:${goJsonString(m[k]!)}`).join(',')}}`;
}

/** moby's Info.ExtraAttributes: the labels/env (and -regex) log-opts select container labels and env vars. */
export function extraAttributes(opts: Record<string, string>, ctx: LogContext): Record<string, string> {
  const out: Record<string, string> = {};
  const labels = ctx.labels ?? {};
  if (opts.labels) {
    for (const k of opts.labels.split(',')) if (k in labels) out[k] = labels[k]!;
  }
  if (opts['labels-regex']) {
    const re = new RegExp(opts['labels-regex']);
    for (const [k, v] of Object.entries(labels)) if (re.test(k)) out[k] = v;
  }
  const env = new Map<string, string>();
  for (const e of ctx.env ?? []) {
    const i = e.indexOf('=');
    if (i > 0) env.set(e.slice(0, i), e.slice(i + 1));
  }
  if (opts.env) {
    for (const k of opts.env.split(',')) if (env.has(k)) out[k] = env.get(k)!;
  }
  if (opts['env-regex']) {
    const re = new RegExp(opts['env-regex']);
    for (const [k, v] of env) if (re.test(k)) out[k] = v;
  }
  return out;
}

/** The `tag` log-opt: Docker's template fields {{.ID}} {{.FullID}} {{.Name}} {{.ImageID}} {{.ImageFullID}} {{.ImageName}} {{.DaemonName}}. */
export function renderTag(tmpl: string, ctx: LogContext): string {
  const f: Record<string, string> = {
    ID: ctx.id.slice(0, 12),
    FullID: ctx.id,
    Name: (ctx.name ?? '').replace(/^\//, ''),
    ImageID: (ctx.imageId ?? '').replace(/^sha256:/, '').slice(0, 12),
    ImageFullID: ctx.imageId ?? '',
    ImageName: ctx.imageName ?? '',
    DaemonName: ctx.daemonName ?? 'docker',
  };
  return tmpl.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (m, k: string) => (k in f ? f[k]! : m));
}

/** Resolves a container's log driver and options into shim settings (validating them). */
export function resolveLogSettings(
  driver: string,
  opts: Record<string, string>,
  logPath: string,
  ctx: LogContext,
): ShimLogSettings {
  validateLogOpts(driver, opts);
  if (driver === 'none') return { driver: 'none', maxSize: -1, maxFile: 1 };
  if (driver === 'local') {
    const l = resolveLocal(opts, logPath);
    const attrs = extraAttributes(opts, ctx);
    if (opts.tag) attrs.tag = renderTag(opts.tag, ctx);
    if (Object.keys(attrs).length) l.attrsPb = encodeLogAttrs(attrs).toString('hex');
    return l;
  }
  let maxSize = -1;
  let maxFile = 1;
  if (opts['max-size'] === undefined && opts['max-file'] === undefined) {
    maxSize = DEFAULT_LOG_MAX_SIZE;
    maxFile = DEFAULT_LOG_MAX_FILE;
  }
  if (opts['max-size'] !== undefined && opts['max-size'] !== '-1') maxSize = parseMaxSize(opts['max-size']);
  if (opts['max-file'] !== undefined) maxFile = parseMaxFile(opts['max-file']);
  if (opts.compress !== undefined) {
    const on = parseGoBool(opts.compress);
    if (on && (maxFile === 1 || maxSize === -1))
      throw invalidArgument('compress cannot be true when max-file is less than 2 or max-size is not set');
    if (on) throw notImplemented('json-file compress=true is not supported by berth yet');
  }
  const attrs = extraAttributes(opts, ctx);
  if (opts.tag) attrs.tag = renderTag(opts.tag, ctx);
  return {
    driver: 'json-file',
    path: logPath,
    maxSize,
    maxFile,
    attrs: Object.keys(attrs).length ? goJsonMap(attrs) : undefined,
  };
}

const TRUE_RE = /^(1|t|T|TRUE|true|True)$/;
const BOOL_RE = /^(1|t|T|TRUE|true|True|0|f|F|FALSE|false|False)$/;

/** max-size (json-file and local): a human size, > 0. */
function parseMaxSize(v: string): number {
  const n = parseHumanSize(v);
  if (n <= 0) throw invalidArgument('max-size must be a positive number');
  return n;
}

/** max-file (json-file and local): Go's strconv.Atoi, >= 1. */
function parseMaxFile(v: string): number {
  if (!/^-?\d+$/.test(v)) throw invalidArgument(`strconv.Atoi: parsing "${v}": invalid syntax`);
  const n = Number(v);
  if (n < 1) throw invalidArgument('max-file cannot be less than 1');
  return n;
}

/** Go's strconv.ParseBool. */
function parseGoBool(v: string): boolean {
  if (!BOOL_RE.test(v)) throw invalidArgument(`strconv.ParseBool: parsing "${v}": invalid syntax`);
  return TRUE_RE.test(v);
}

/** moby's local driver config: max-size 20m, max-file 5, compress true unless set. */
function resolveLocal(opts: Record<string, string>, logPath: string): ShimLogSettings {
  let maxSize = DEFAULT_LOG_MAX_SIZE;
  let maxFile = DEFAULT_LOG_MAX_FILE;
  let compress = true;
  if (opts['max-size'] !== undefined) maxSize = parseMaxSize(opts['max-size']);
  if (opts['max-file'] !== undefined) maxFile = parseMaxFile(opts['max-file']);
  if (opts.compress !== undefined) compress = parseGoBool(opts.compress);
  if (compress && maxFile <= 1) throw invalidArgument('compression cannot be enabled when max file count is 1');
  return { driver: 'local', path: logPath, maxSize, maxFile, compress };
}
