// The legacy v1 image JSON that `docker save` (20.10) writes as `<v1id>/json`,
// and the v1 IDs (moby image/v1 CreateID), encoded the way Go's encoding/json
// encodes moby's V1Image / container.Config structs, so the IDs and files match.
import { type Digest, digestHex, goJsonString, sha256 } from '../../oci/index.js';

const goKeyOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Go encoding of a generic JSON value; objects are maps (sorted keys) unless `keepOrder`. */
export function goValue(v: unknown, keepOrder = false): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return goJsonString(v);
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map((x) => goValue(x)).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = keepOrder ? Object.keys(o) : Object.keys(o).sort(goKeyOrder);
  return `{${keys.map((k) => `${goJsonString(k)}:${goValue(o[k])}`).join(',')}}`;
}

type Kind = 'string' | 'bool' | 'slice' | 'map' | 'struct' | 'int';
/** moby 20.10 container.Config fields, in struct order: [name, kind, omitempty]. */
const CONTAINER_CONFIG: [string, Kind, boolean][] = [
  ['Hostname', 'string', false],
  ['Domainname', 'string', false],
  ['User', 'string', false],
  ['AttachStdin', 'bool', false],
  ['AttachStdout', 'bool', false],
  ['AttachStderr', 'bool', false],
  ['ExposedPorts', 'map', true],
  ['Tty', 'bool', false],
  ['OpenStdin', 'bool', false],
  ['StdinOnce', 'bool', false],
  ['Env', 'slice', false],
  ['Cmd', 'slice', false],
  ['Healthcheck', 'struct', true],
  ['ArgsEscaped', 'bool', true],
  ['Image', 'string', false],
  ['Volumes', 'map', false],
  ['WorkingDir', 'string', false],
  ['Entrypoint', 'slice', false],
  ['NetworkDisabled', 'bool', true],
  ['MacAddress', 'string', true],
  ['OnBuild', 'slice', false],
  ['Labels', 'map', false],
  ['StopSignal', 'string', true],
  ['StopTimeout', 'int', true],
  ['Shell', 'slice', true],
];

function isEmpty(kind: Kind, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  switch (kind) {
    case 'string':
      return v === '';
    case 'bool':
      return v === false;
    case 'slice':
      return Array.isArray(v) && v.length === 0;
    case 'map':
      return typeof v === 'object' && Object.keys(v as object).length === 0;
    default:
      return false; // pointers (struct, int) are only empty when nil
  }
}

function zero(kind: Kind): string {
  return kind === 'string' ? '""' : kind === 'bool' ? 'false' : 'null';
}

/** Encodes a container config as Go encodes container.Config (unknown keys dropped). */
export function goContainerConfig(c: Record<string, unknown> | null | undefined): string {
  const o = c ?? {};
  const parts: string[] = [];
  for (const [name, kind, omit] of CONTAINER_CONFIG) {
    const v = o[name];
    if (omit && isEmpty(kind, v)) continue;
    let enc: string;
    if (v === undefined || v === null) enc = zero(kind);
    else if (kind === 'struct') enc = goValue(v, true);
    else if (kind === 'map' || kind === 'slice') enc = goValue(v);
    else enc = JSON.stringify(v);
    parts.push(`${goJsonString(name)}:${enc}`);
  }
  return `{${parts.join(',')}}`;
}

/** Go time.Time re-encoding of an RFC 3339 string (RFC3339Nano: fraction without trailing zeros). */
export function goTime(s: string | undefined): string {
  if (!s) return '0001-01-01T00:00:00Z';
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (!m) return s;
  const frac = (m[2] ?? '').slice(0, 9).replace(/0+$/, '');
  return `${m[1]}${frac ? `.${frac}` : ''}${m[3]}`;
}

/** The ordered JSON members of a V1Image (Go struct order, omitempty applied). */
export interface V1Fields {
  id?: string;
  parent?: string;
  comment?: string;
  created: string;
  container?: string;
  container_config?: Record<string, unknown> | null;
  docker_version?: string;
  author?: string;
  config?: Record<string, unknown> | null;
  architecture?: string;
  variant?: string;
  os?: string;
  Size?: number;
}

function v1Members(f: V1Fields): [string, string][] {
  const m: [string, string][] = [];
  if (f.id) m.push(['id', goJsonString(f.id)]);
  if (f.parent) m.push(['parent', goJsonString(f.parent)]);
  if (f.comment) m.push(['comment', goJsonString(f.comment)]);
  m.push(['created', goJsonString(goTime(f.created))]);
  if (f.container) m.push(['container', goJsonString(f.container)]);
  m.push(['container_config', goContainerConfig(f.container_config)]);
  if (f.docker_version) m.push(['docker_version', goJsonString(f.docker_version)]);
  if (f.author) m.push(['author', goJsonString(f.author)]);
  if (f.config) m.push(['config', goContainerConfig(f.config)]);
  if (f.architecture) m.push(['architecture', goJsonString(f.architecture)]);
  if (f.variant) m.push(['variant', goJsonString(f.variant)]);
  if (f.os) m.push(['os', goJsonString(f.os)]);
  if (f.Size) m.push(['Size', JSON.stringify(f.Size)]);
  return m;
}

/** `<v1id>/json` bytes. */
export function encodeV1Json(f: V1Fields): string {
  return `{${v1Members(f)
    .map(([k, v]) => `${goJsonString(k)}:${v}`)
    .join(',')}}`;
}

/** moby v1.CreateID: sha256 over the V1Image (ID cleared) as a sorted map plus layer_id and parent. */
export function createV1Id(f: V1Fields, layerId: Digest, parent?: Digest): Digest {
  const members = v1Members({ ...f, id: '' });
  members.push(['layer_id', goJsonString(layerId)]);
  if (parent) members.push(['parent', goJsonString(parent)]);
  const map = new Map(members);
  const keys = [...map.keys()].sort(goKeyOrder);
  return sha256(`{${keys.map((k) => `${goJsonString(k)}:${map.get(k)}`).join(',')}}`);
}

export const v1Hex = (d: Digest) => digestHex(d);
