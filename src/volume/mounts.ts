// The -v / --mount grammar and the API's Mount validation, with dockerd 20.10's
// error texts (moby volume/mounts/linux_parser.go, validate.go, parser.go).
import fs from 'node:fs';
import path from 'node:path';
import { type BerthError, invalidArgument } from '../errors/index.js';

export type MountType = 'bind' | 'volume' | 'tmpfs' | 'npipe';
export type Propagation = 'private' | 'rprivate' | 'shared' | 'rshared' | 'slave' | 'rslave';

/** api/types/mount.Mount as the Engine API sends it in HostConfig.Mounts. */
export interface ApiMount {
  Type?: MountType | string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: Propagation | string; NonRecursive?: boolean };
  VolumeOptions?: {
    NoCopy?: boolean;
    Labels?: Record<string, string>;
    DriverConfig?: { Name?: string; Options?: Record<string, string> };
  };
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
}

/** A container mount point as config.v2.json stores it (moby volume/mounts.MountPoint). */
export interface MountPoint {
  Source: string;
  Destination: string;
  RW: boolean;
  Name: string;
  Driver: string;
  Type: MountType | string;
  /** The -v mode string (json "Relabel" in moby). */
  Relabel?: string;
  Propagation?: string;
  /** The volume's mount reference (a random ID per mount). */
  ID?: string;
  Spec: ApiMount;
  SkipMountpointCreation: boolean;
  /** Not persisted: copy image content into an empty volume (default true for volumes). */
  CopyData?: boolean;
}

export const DEFAULT_PROPAGATION: Propagation = 'rprivate';
const PROPAGATIONS = new Set(['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave']);
const RW_MODES = new Set(['rw', 'ro']);
const LABEL_MODES = new Set(['z', 'Z']);
const COPY_MODES = new Set(['nocopy']);
const CONSISTENCY = new Set(['consistent', 'cached', 'delegated', 'default']);

export const errInvalidSpec = (spec: string) => invalidArgument(`invalid volume specification: '${spec}'`);
export const errInvalidMode = (mode: string) => invalidArgument(`invalid mode: ${mode}`);
const errMountConfig = (type: string | undefined, msg: string) =>
  invalidArgument(`invalid mount config for type "${type ?? ''}": ${msg}`);

function validateAbsolute(p: string): string | undefined {
  const q = p.replace(/\\/g, '/');
  return q.startsWith('/') ? undefined : `invalid mount path: '${q}' mount path must be absolute`;
}
function validateNotRoot(p: string): string | undefined {
  return path.posix.normalize(p.replace(/\\/g, '/')) === '/'
    ? "invalid specification: destination can't be '/'"
    : undefined;
}

export function validMountMode(mode: string): boolean {
  if (mode === '') return true;
  let rw = 0;
  let label = 0;
  let prop = 0;
  let copy = 0;
  let cons = 0;
  for (const o of mode.split(',')) {
    if (RW_MODES.has(o)) rw++;
    else if (LABEL_MODES.has(o)) label++;
    else if (PROPAGATIONS.has(o)) prop++;
    else if (COPY_MODES.has(o)) copy++;
    else if (CONSISTENCY.has(o)) cons++;
    else return false;
  }
  return rw <= 1 && label <= 1 && prop <= 1 && copy <= 1 && cons <= 1;
}

/** tmpfs options string as moby's ConvertTmpfsOptions builds it (ro, mode=%o, size with g/m/k suffix). */
export function convertTmpfsOptions(opt: ApiMount['TmpfsOptions'], readOnly: boolean): string {
  const raw: string[] = [];
  if (readOnly) raw.push('ro');
  if (opt?.Mode) raw.push(`mode=${(opt.Mode & 0o7777).toString(8)}`);
  if (opt?.SizeBytes) {
    if (opt.SizeBytes < 0) throw invalidArgument(`invalid tmpfs size: ${opt.SizeBytes}`);
    let size = opt.SizeBytes;
    let suffix = '';
    for (const [s, d] of [
      ['g', 2 ** 30],
      ['m', 2 ** 20],
      ['k', 2 ** 10],
    ] as const) {
      if (size % d === 0) {
        size /= d;
        suffix = s;
        break;
      }
    }
    raw.push(`size=${size}${suffix}`);
  }
  return raw.join(',');
}

export interface ValidateOptions {
  /** Check that bind sources exist (true for --mount, false for -v which creates them). */
  bindSourceMustExist?: boolean;
  /** Test hook for the existence check. */
  exists?: (p: string) => boolean;
}

/** Validates an API Mount (HostConfig.Mounts entry) like moby's ValidateMountConfig. */
export function validateMountConfig(m: ApiMount, opts: ValidateOptions = {}): void {
  const t = m.Type;
  if (!m.Target) throw errMountConfig(t, 'field Target must not be empty');
  const nr = validateNotRoot(m.Target);
  if (nr) throw errMountConfig(t, nr);
  const abs = validateAbsolute(m.Target);
  if (abs) throw errMountConfig(t, abs);
  switch (t) {
    case 'bind': {
      if (!m.Source) throw errMountConfig(t, 'field Source must not be empty');
      const p = m.BindOptions?.Propagation;
      if (p && !PROPAGATIONS.has(p)) throw errMountConfig(t, `invalid propagation mode: ${p}`);
      if (m.VolumeOptions) throw errMountConfig(t, 'field VolumeOptions must not be specified');
      const sa = validateAbsolute(m.Source);
      if (sa) throw errMountConfig(t, sa);
      if (opts.bindSourceMustExist !== false) {
        const exists = opts.exists ?? ((x: string) => fs.existsSync(x));
        if (!exists(m.Source)) throw errMountConfig(t, `bind source path does not exist: ${m.Source}`);
      }
      break;
    }
    case 'volume':
      if (m.BindOptions) throw errMountConfig(t, 'field BindOptions must not be specified');
      if (!m.Source && m.ReadOnly) throw errMountConfig(t, 'must not set ReadOnly mode when using anonymous volumes');
      break;
    case 'tmpfs':
      if (m.BindOptions) throw errMountConfig(t, 'field BindOptions must not be specified');
      if (m.Source) throw errMountConfig(t, 'field Source must not be specified');
      try {
        convertTmpfsOptions(m.TmpfsOptions, !!m.ReadOnly);
      } catch (e) {
        throw errMountConfig(t, (e as Error).message);
      }
      break;
    default:
      throw errMountConfig(t, 'mount type unknown');
  }
}

function cleanPath(p: string): string {
  return path.posix.normalize(p.replace(/\\/g, '/')).replace(/(.)\/$/, '$1');
}

/** Turns a validated API Mount into a MountPoint (moby parseMountSpec). */
export function mountPointFromSpec(m: ApiMount, opts: ValidateOptions = {}): MountPoint {
  validateMountConfig(m, opts);
  const mp: MountPoint = {
    Source: '',
    Destination: cleanPath(m.Target!),
    RW: !m.ReadOnly,
    Name: '',
    Driver: '',
    Type: m.Type!,
    Spec: m,
    SkipMountpointCreation: false,
  };
  if (m.Type === 'volume') {
    if (m.Source) mp.Name = m.Source;
    mp.CopyData = !m.VolumeOptions?.NoCopy;
    if (m.VolumeOptions?.DriverConfig?.Name) mp.Driver = m.VolumeOptions.DriverConfig.Name;
  } else if (m.Type === 'bind') {
    mp.Source = cleanPath(m.Source!);
    mp.Propagation = m.BindOptions?.Propagation || DEFAULT_PROPAGATION;
  }
  return mp;
}

/** Parses one `-v` / HostConfig.Binds entry (moby ParseMountRaw, Linux). */
export function parseBind(raw: string, volumeDriver = '', opts: ValidateOptions = {}): MountPoint {
  const arr = splitN(raw, ':', 4);
  if (arr[0] === '') throw errInvalidSpec(raw);
  const spec: ApiMount = {};
  let mode = '';
  switch (arr.length) {
    case 1:
      spec.Target = arr[0];
      break;
    case 2:
      if (validMountMode(arr[1]!)) throw errInvalidSpec(raw);
      spec.Source = arr[0];
      spec.Target = arr[1];
      break;
    case 3:
      spec.Source = arr[0];
      spec.Target = arr[1];
      mode = arr[2]!;
      break;
    default:
      throw errInvalidSpec(raw);
  }
  if (!validMountMode(mode)) throw errInvalidMode(mode);
  spec.Type = spec.Source?.startsWith('/') ? 'bind' : 'volume';
  const modes = mode.split(',');
  spec.ReadOnly = modes.includes('ro');
  if (volumeDriver && spec.Type === 'volume') spec.VolumeOptions = { DriverConfig: { Name: volumeDriver } };
  if (modes.includes('nocopy')) spec.VolumeOptions = { ...spec.VolumeOptions, NoCopy: true };
  const prop = modes.find((o) => PROPAGATIONS.has(o));
  if (prop) spec.BindOptions = { Propagation: prop };
  let mp: MountPoint;
  try {
    mp = mountPointFromSpec(spec, { ...opts, bindSourceMustExist: false });
  } catch (e) {
    throw invalidArgument(`invalid volume specification: '${raw}': ${(e as BerthError).message}`);
  }
  mp.Relabel = mode;
  // moby keeps the -v spec minimal in MountPoint.Spec
  return mp;
}

/** Parses `--tmpfs dest[:opts]` into [destination, options] (HostConfig.Tmpfs entry). */
export function parseTmpfsFlag(raw: string): [string, string] {
  const i = raw.indexOf(':');
  const dest = i < 0 ? raw : raw.slice(0, i);
  const o = i < 0 ? '' : raw.slice(i + 1);
  validateTmpfsDestination(dest);
  return [dest, o];
}

export function validateTmpfsDestination(dest: string): void {
  const e = validateNotRoot(dest) ?? validateAbsolute(dest);
  if (e) throw invalidArgument(e);
}

function splitN(s: string, sep: string, n: number): string[] {
  const out: string[] = [];
  let rest = s;
  while (out.length < n - 1) {
    const i = rest.indexOf(sep);
    if (i < 0) break;
    out.push(rest.slice(0, i));
    rest = rest.slice(i + sep.length);
  }
  out.push(rest);
  return out;
}

/**
 * Parses a `--mount` flag value into an API Mount, like the docker CLI's
 * opts.MountOpt (the daemon then validates it with validateMountConfig).
 */
export function parseMountFlag(value: string): ApiMount {
  const m: ApiMount = {};
  let volOpts: NonNullable<ApiMount['VolumeOptions']> | undefined;
  let bindOpts: NonNullable<ApiMount['BindOptions']> | undefined;
  let tmpfsOpts: NonNullable<ApiMount['TmpfsOptions']> | undefined;
  const vo = () => {
    volOpts ??= {};
    return volOpts;
  };
  const bo = () => {
    bindOpts ??= {};
    return bindOpts;
  };
  const to = () => {
    tmpfsOpts ??= {};
    return tmpfsOpts;
  };
  const fields = value.split(',');
  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    const val = eq < 0 ? undefined : field.slice(eq + 1);
    if (val === undefined) {
      switch (key) {
        case 'readonly':
        case 'ro':
          m.ReadOnly = true;
          continue;
        case 'volume-nocopy':
          vo().NoCopy = true;
          continue;
        case 'bind-nonrecursive':
          bo().NonRecursive = true;
          continue;
        default:
          throw invalidArgument(`invalid field '${field}' must be a key=value pair`);
      }
    }
    const bool = () => {
      if (/^(1|t|true|TRUE|True)$/.test(val)) return true;
      if (/^(0|f|false|FALSE|False)$/.test(val)) return false;
      throw invalidArgument(`invalid value for ${key}: ${val}`);
    };
    switch (key) {
      case 'type':
        m.Type = val;
        break;
      case 'source':
      case 'src':
        m.Source = val;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.Target = val;
        break;
      case 'readonly':
      case 'ro':
        m.ReadOnly = bool();
        break;
      case 'consistency':
        m.Consistency = val;
        break;
      case 'bind-propagation':
        bo().Propagation = val;
        break;
      case 'bind-nonrecursive':
        bo().NonRecursive = bool();
        break;
      case 'volume-nocopy':
        vo().NoCopy = bool();
        break;
      case 'volume-label': {
        const [k, v = ''] = val.split(/=(.*)/s);
        vo().Labels = { ...vo().Labels, [k!]: v };
        break;
      }
      case 'volume-driver':
        vo().DriverConfig = { ...vo().DriverConfig, Name: val };
        break;
      case 'volume-opt': {
        const i = val.indexOf('=');
        const k = i < 0 ? val : val.slice(0, i);
        vo().DriverConfig = {
          ...vo().DriverConfig,
          Options: { ...vo().DriverConfig?.Options, [k]: i < 0 ? '' : val.slice(i + 1) },
        };
        break;
      }
      case 'tmpfs-size': {
        const n = parseSize(val);
        if (n === undefined) throw invalidArgument(`invalid value for ${key}: ${val}`);
        to().SizeBytes = n;
        break;
      }
      case 'tmpfs-mode': {
        const n = Number.parseInt(val, 8);
        if (!/^[0-7]+$/.test(val) || Number.isNaN(n)) throw invalidArgument(`invalid value for ${key}: ${val}`);
        to().Mode = n;
        break;
      }
      default:
        throw invalidArgument(`unexpected key '${key}' in '${field}'`);
    }
  }
  m.Type ??= 'volume';
  if (!m.Target) throw invalidArgument('target is required');
  if (volOpts && m.Type !== 'volume')
    throw invalidArgument(`cannot mix 'volume-*' options with mount type '${m.Type}'`);
  if (bindOpts && m.Type !== 'bind') throw invalidArgument(`cannot mix 'bind-*' options with mount type '${m.Type}'`);
  if (tmpfsOpts && m.Type !== 'tmpfs')
    throw invalidArgument(`cannot mix 'tmpfs-*' options with mount type '${m.Type}'`);
  if (volOpts) m.VolumeOptions = volOpts;
  if (bindOpts) m.BindOptions = bindOpts;
  if (tmpfsOpts) m.TmpfsOptions = tmpfsOpts;
  return m;
}

/** docker's units.RAMInBytes: 64m, 1g, 1024, 1.5k … (binary units). */
export function parseSize(s: string): number | undefined {
  const r = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(s.trim());
  if (!r) return undefined;
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 }[r[2]!.toLowerCase()]!;
  return Math.floor(Number(r[1]) * mult);
}
