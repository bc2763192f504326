// `docker import --change` / `docker commit --change`: the Dockerfile
// instructions that may change an image config (moby dockerfile.BuildFromConfig).
import { invalidArgument } from '../errors/index.js';
import type { ContainerConfig } from '../oci/index.js';

const ALLOWED = new Set([
  'cmd',
  'entrypoint',
  'env',
  'expose',
  'label',
  'onbuild',
  'user',
  'volume',
  'workdir',
  'stopsignal',
  'healthcheck',
]);

/** Docker's empty container.Config, in Go's field order. */
export function emptyContainerConfig(): Record<string, unknown> {
  return {
    Hostname: '',
    Domainname: '',
    User: '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: null,
    Cmd: null,
    Image: '',
    Volumes: null,
    WorkingDir: '',
    Entrypoint: null,
    OnBuild: null,
    Labels: null,
  };
}

/** Re-orders a container config into Go's struct field order (JSON output parity). */
export function orderContainerConfig(c: Record<string, unknown>): Record<string, unknown> {
  const order = [
    'Hostname',
    'Domainname',
    'User',
    'AttachStdin',
    'AttachStdout',
    'AttachStderr',
    'ExposedPorts',
    'Tty',
    'OpenStdin',
    'StdinOnce',
    'Env',
    'Cmd',
    'Healthcheck',
    'ArgsEscaped',
    'Image',
    'Volumes',
    'WorkingDir',
    'Entrypoint',
    'NetworkDisabled',
    'MacAddress',
    'OnBuild',
    'Labels',
    'StopSignal',
    'StopTimeout',
    'Shell',
  ];
  const out: Record<string, unknown> = {};
  for (const k of order) if (k in c) out[k] = c[k];
  for (const k of Object.keys(c)) if (!(k in out)) out[k] = c[k];
  return out;
}

/** The JSON (exec) form of an instruction's argument: a JSON array of strings, else undefined. */
function jsonArray(t: string): string[] | undefined {
  if (!t.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // not JSON
  }
  return undefined;
}

/** A JSON array of strings, else the words. */
function jsonOrWords(rest: string): string[] {
  const t = rest.trim();
  return jsonArray(t) ?? t.split(/\s+/).filter(Boolean);
}

/** CMD/ENTRYPOINT: the exec form, else the shell form run by /bin/sh -c. */
function execForm(rest: string): string[] {
  const t = rest.trim();
  return jsonArray(t) ?? ['/bin/sh', '-c', t];
}

/** key=value pairs (quotes removed) or the legacy `KEY value` form. */
function keyValues(instr: string, rest: string): [string, string][] {
  const t = rest.trim();
  const words = t.match(/(?:[^\s"']+|"(?:\\.|[^"])*"|'[^']*')+/g) ?? [];
  if (words.length > 0 && !words[0]!.includes('=')) {
    const i = t.search(/\s/);
    if (i < 0) throw invalidArgument(`${instr.toUpperCase()} names can not be blank`);
    return [[t.slice(0, i), t.slice(i).trim()]];
  }
  return words.map((w) => {
    const i = w.indexOf('=');
    if (i <= 0) throw invalidArgument(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    const unq = (s: string) =>
      s
        .replace(/^"(.*)"$/s, '$1')
        .replace(/^'(.*)'$/s, '$1')
        .replace(/\\(.)/g, '$1');
    return [unq(w.slice(0, i)), unq(w.slice(i + 1))];
  });
}

/** Applies `changes` (one instruction each) to `base` and returns the new config. */
export function applyChanges(base: Record<string, unknown>, changes: string[]): ContainerConfig {
  const c = structuredClone(base) as Record<string, unknown>;
  for (const line of changes) {
    const t = line.trim();
    if (t === '') continue;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(t)!;
    const instr = m[1]!.toLowerCase();
    const rest = m[2]!;
    if (!ALLOWED.has(instr)) throw invalidArgument(`${instr} is not a valid change command`);
    switch (instr) {
      case 'cmd':
        c.Cmd = execForm(rest);
        break;
      case 'entrypoint':
        c.Entrypoint = execForm(rest);
        break;
      case 'env': {
        const env = ((c.Env as string[] | null) ?? []).slice();
        for (const [k, v] of keyValues(instr, rest)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        c.Env = env;
        break;
      }
      case 'label': {
        const labels = { ...((c.Labels as Record<string, string> | null) ?? {}) };
        for (const [k, v] of keyValues(instr, rest)) labels[k] = v;
        c.Labels = labels;
        break;
      }
      case 'expose': {
        const ports = { ...((c.ExposedPorts as Record<string, object> | undefined) ?? {}) };
        for (const p of rest.trim().split(/\s+/).filter(Boolean)) {
          const mm = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
          if (!mm) throw invalidArgument(`invalid containerPort: ${p}`);
          const lo = Number(mm[1]);
          const hi = mm[2] ? Number(mm[2]) : lo;
          for (let n = lo; n <= hi; n++) ports[`${n}/${(mm[3] ?? 'tcp').toLowerCase()}`] = {};
        }
        c.ExposedPorts = ports;
        break;
      }
      case 'user':
        c.User = rest.trim();
        break;
      case 'workdir': {
        const w = rest.trim();
        c.WorkingDir = w.startsWith('/') ? w : `${(c.WorkingDir as string) || '/'}/${w}`.replace(/\/+/g, '/');
        break;
      }
      case 'volume': {
        const vols = { ...((c.Volumes as Record<string, object> | null) ?? {}) };
        for (const v of jsonOrWords(rest)) {
          if (v.trim() === '') throw invalidArgument('VOLUME specified can not be an empty string');
          vols[v] = {};
        }
        c.Volumes = vols;
        break;
      }
      case 'onbuild':
        c.OnBuild = [...((c.OnBuild as string[] | null) ?? []), rest.trim()];
        break;
      case 'stopsignal':
        c.StopSignal = rest.trim();
        break;
      case 'healthcheck':
        throw invalidArgument('HEALTHCHECK changes are not supported by berth yet');
    }
  }
  return orderContainerConfig(c) as unknown as ContainerConfig;
}
