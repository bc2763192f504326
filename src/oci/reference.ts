// Image references with Docker's grammar and normalisation (the rules of
// distribution/reference): `busybox` → `docker.io/library/busybox:latest`,
// `host:5000/a/b@sha256:…`. Error texts follow Docker's, since users see them.
import { invalidArgument } from '../errors/index.js';
import { type Digest, parseDigest } from './digest.js';

export const DEFAULT_DOMAIN = 'docker.io';
export const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
export const OFFICIAL_REPO_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';
export const NAME_TOTAL_LENGTH_MAX = 255;

const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const domainNameComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const ipv6address = '\\[(?:[a-fA-F0-9:]+)\\]';
const domainName = `${domainNameComponent}(?:\\.${domainNameComponent})*`;
const host = `(?:${domainName}|${ipv6address})`;
const domainAndPort = `${host}(?::[0-9]+)?`;
const tagPat = '[\\w][\\w.-]{0,127}';
const digestPat = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const namePat = `(?:${domainAndPort}/)?${remoteName}`;

const REFERENCE = new RegExp(`^(${namePat})(?::(${tagPat}))?(?:@(${digestPat}))?$`);
const ANCHORED_NAME = new RegExp(`^(?:(${domainAndPort})/)?(${remoteName})$`);
const ANCHORED_TAG = new RegExp(`^${tagPat}$`);
const ANCHORED_PATH_COMPONENT = new RegExp(`^${pathComponent}$`);
const ANCHORED_ID = /^[a-f0-9]{64}$/;

export interface Reference {
  /** Registry host, e.g. `docker.io` or `localhost:5000`. */
  readonly domain: string;
  /** Repository path within the registry, e.g. `library/busybox`. */
  readonly path: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

/** `domain/path`, the fully qualified repository name. */
export function refName(r: Reference): string {
  return r.domain ? `${r.domain}/${r.path}` : r.path;
}

/** The canonical string: `domain/path[:tag][@digest]`. */
export function refString(r: Reference): string {
  return refName(r) + (r.tag ? `:${r.tag}` : '') + (r.digest ? `@${r.digest}` : '');
}

/** The repository name as users write it: `busybox`, `user/app`, `host:5000/app`. */
export function familiarName(r: Reference): string {
  if (r.domain === DEFAULT_DOMAIN) {
    if (r.path.startsWith(OFFICIAL_REPO_PREFIX) && !r.path.slice(OFFICIAL_REPO_PREFIX.length).includes('/')) {
      return r.path.slice(OFFICIAL_REPO_PREFIX.length);
    }
    return r.path;
  }
  return refName(r);
}

export function familiarString(r: Reference): string {
  return familiarName(r) + (r.tag ? `:${r.tag}` : '') + (r.digest ? `@${r.digest}` : '');
}

function splitDockerDomain(name: string): [string, string] {
  const i = name.indexOf('/');
  let domain: string;
  let remainder: string;
  if (
    i === -1 ||
    (!/[.:]/.test(name.slice(0, i)) &&
      name.slice(0, i) !== 'localhost' &&
      name.slice(0, i).toLowerCase() === name.slice(0, i))
  ) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    domain = name.slice(0, i);
    remainder = name.slice(i + 1);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return [domain, remainder];
}

/** Parses a fully qualified reference without normalisation. */
export function parseReference(s: string): Reference {
  const m = REFERENCE.exec(s);
  if (!m) {
    if (s === '') throw invalidArgument('invalid reference format: repository name must have at least one component');
    if (REFERENCE.test(s.toLowerCase()))
      throw invalidArgument('invalid reference format: repository name must be lowercase');
    throw invalidArgument(`invalid reference format: ${JSON.stringify(s)}`);
  }
  const name = m[1]!;
  if (name.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalidArgument(
      `invalid reference format: repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`,
    );
  }
  const nm = ANCHORED_NAME.exec(name)!;
  let digest: Digest | undefined;
  if (m[3]) {
    try {
      digest = parseDigest(m[3]);
    } catch (e) {
      throw invalidArgument(`invalid reference format: ${(e as Error).message}`, e);
    }
  }
  const domain = nm[1] ?? '';
  const path = nm[2]!;
  return { domain, path, ...(m[2] ? { tag: m[2] } : {}), ...(digest ? { digest } : {}) };
}

/**
 * Parses a reference as the docker CLI and dockerd do (ParseNormalizedNamed):
 * adds docker.io and library/ where implied. Does not add a default tag.
 */
export function parseNormalizedReference(s: string): Reference {
  if (ANCHORED_ID.test(s)) {
    throw invalidArgument(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  }
  const [domain, remainder] = splitDockerDomain(s);
  const tagSep = remainder.indexOf(':');
  const remoteNamePart = tagSep > -1 ? remainder.slice(0, tagSep) : remainder.split('@')[0]!;
  if (remoteNamePart.toLowerCase() !== remoteNamePart) {
    throw invalidArgument(`invalid reference format: repository name (${remoteNamePart}) must be lowercase`);
  }
  const r = parseReference(`${domain}/${remainder}`);
  return r;
}

/** Adds `:latest` when the reference has neither tag nor digest (TagNameOnly). */
export function withDefaultTag(r: Reference): Reference {
  return r.tag || r.digest ? r : { ...r, tag: DEFAULT_TAG };
}

/** Parse + normalise + default tag: what `docker pull busybox` resolves. */
export function parseDockerRef(s: string): Reference {
  return withDefaultTag(parseNormalizedReference(s));
}

export function isValidTag(tag: string): boolean {
  return ANCHORED_TAG.test(tag);
}

export function isValidPathComponent(c: string): boolean {
  return ANCHORED_PATH_COMPONENT.test(c);
}

/** Is `name` a valid repository path (`a/b/c`, no domain)? Used by the registry server. */
export function isValidRepositoryPath(name: string): boolean {
  return name.length > 0 && name.length <= NAME_TOTAL_LENGTH_MAX && name.split('/').every(isValidPathComponent);
}
