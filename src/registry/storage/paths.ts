// The ONE module that knows the storage layout. It is distribution's
// filesystem layout (registry/storage/paths.go), byte for byte:
//
//   /docker/registry/v2/blobs/<alg>/<first 2 hex>/<hex>/data
//   /docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
//   /docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//   /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
//   /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//   /docker/registry/v2/repositories/<name>/_uploads/<id>/{data,startedat,hashstates/<alg>/<offset>}
//
// Paths are driver paths (absolute, '/'-separated); a driver maps them under
// its root. Every untrusted part (name, tag, digest, upload id) is validated
// here before a path is built, so no input can name anything outside the tree.
import {
  type Digest,
  digestAlgorithm,
  digestHex,
  isValidRepositoryPath,
  isValidTag,
  parseDigest,
} from '../../oci/index.js';
import { regError } from '../errors.js';

export const ROOT = '/docker/registry/v2';
export const REPOSITORIES = `${ROOT}/repositories`;
export const BLOBS = `${ROOT}/blobs`;

/** Link files hold the digest string exactly, with no trailing newline (as distribution writes them). */
export const linkContent = (d: Digest): Buffer => Buffer.from(d, 'utf8');

export type PathSpec =
  | { kind: 'repositoriesRoot' }
  | { kind: 'repository'; name: string }
  | { kind: 'blobsRoot' }
  | { kind: 'blobDir'; digest: Digest }
  | { kind: 'blobData'; digest: Digest }
  | { kind: 'layersRoot'; name: string }
  | { kind: 'layerLink'; name: string; digest: Digest }
  | { kind: 'manifestsRoot'; name: string }
  | { kind: 'revisionsRoot'; name: string }
  | { kind: 'revisionDir'; name: string; digest: Digest }
  | { kind: 'revisionLink'; name: string; digest: Digest }
  | { kind: 'tagsRoot'; name: string }
  | { kind: 'tagDir'; name: string; tag: string }
  | { kind: 'tagCurrentLink'; name: string; tag: string }
  | { kind: 'tagIndexRoot'; name: string; tag: string }
  | { kind: 'tagIndexLink'; name: string; tag: string; digest: Digest }
  | { kind: 'uploadsRoot'; name: string }
  | { kind: 'uploadDir'; name: string; id: string }
  | { kind: 'uploadData'; name: string; id: string }
  | { kind: 'uploadStartedAt'; name: string; id: string }
  | { kind: 'uploadHashStates'; name: string; id: string; algorithm: string };

const UPLOAD_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function checkName(name: string): string {
  if (!isValidRepositoryPath(name)) throw regError('NAME_INVALID', { name }, { message: 'invalid repository name' });
  return name;
}
export function checkTag(tag: string): string {
  if (!isValidTag(tag)) throw regError('TAG_INVALID', { tag }, { message: 'invalid tag' });
  return tag;
}
export function checkDigest(d: string): Digest {
  try {
    return parseDigest(d);
  } catch (e) {
    throw regError('DIGEST_INVALID', { digest: d }, { message: (e as Error).message });
  }
}
export function checkUploadId(id: string): string {
  if (!UPLOAD_ID.test(id)) throw regError('BLOB_UPLOAD_UNKNOWN', { id });
  return id;
}

function digestComponents(d: Digest, multilevel: boolean): string {
  const alg = digestAlgorithm(checkDigest(d));
  const hex = digestHex(d);
  return multilevel ? `${alg}/${hex.slice(0, 2)}/${hex}` : `${alg}/${hex}`;
}

const repo = (name: string) => `${REPOSITORIES}/${checkName(name)}`;

/** The driver path of a spec. Throws a RegistryError on an invalid component. */
export function pathFor(spec: PathSpec): string {
  switch (spec.kind) {
    case 'repositoriesRoot':
      return REPOSITORIES;
    case 'repository':
      return repo(spec.name);
    case 'blobsRoot':
      return BLOBS;
    case 'blobDir':
      return `${BLOBS}/${digestComponents(spec.digest, true)}`;
    case 'blobData':
      return `${BLOBS}/${digestComponents(spec.digest, true)}/data`;
    case 'layersRoot':
      return `${repo(spec.name)}/_layers`;
    case 'layerLink':
      return `${repo(spec.name)}/_layers/${digestComponents(spec.digest, false)}/link`;
    case 'manifestsRoot':
      return `${repo(spec.name)}/_manifests`;
    case 'revisionsRoot':
      return `${repo(spec.name)}/_manifests/revisions`;
    case 'revisionDir':
      return `${repo(spec.name)}/_manifests/revisions/${digestComponents(spec.digest, false)}`;
    case 'revisionLink':
      return `${repo(spec.name)}/_manifests/revisions/${digestComponents(spec.digest, false)}/link`;
    case 'tagsRoot':
      return `${repo(spec.name)}/_manifests/tags`;
    case 'tagDir':
      return `${repo(spec.name)}/_manifests/tags/${checkTag(spec.tag)}`;
    case 'tagCurrentLink':
      return `${repo(spec.name)}/_manifests/tags/${checkTag(spec.tag)}/current/link`;
    case 'tagIndexRoot':
      return `${repo(spec.name)}/_manifests/tags/${checkTag(spec.tag)}/index`;
    case 'tagIndexLink':
      return `${repo(spec.name)}/_manifests/tags/${checkTag(spec.tag)}/index/${digestComponents(spec.digest, false)}/link`;
    case 'uploadsRoot':
      return `${repo(spec.name)}/_uploads`;
    case 'uploadDir':
      return `${repo(spec.name)}/_uploads/${checkUploadId(spec.id)}`;
    case 'uploadData':
      return `${repo(spec.name)}/_uploads/${checkUploadId(spec.id)}/data`;
    case 'uploadStartedAt':
      return `${repo(spec.name)}/_uploads/${checkUploadId(spec.id)}/startedat`;
    case 'uploadHashStates':
      if (!/^[a-z0-9]+$/.test(spec.algorithm)) throw regError('DIGEST_INVALID', { algorithm: spec.algorithm });
      return `${repo(spec.name)}/_uploads/${checkUploadId(spec.id)}/hashstates/${spec.algorithm}`;
  }
}

/**
 * Parses the `<alg>/<hex>` directory pair found when listing `_layers`,
 * `revisions` or a tag index back into a digest; undefined when it is not one.
 */
export function digestFromComponents(alg: string, hex: string): Digest | undefined {
  try {
    return parseDigest(`${alg}:${hex}`);
  } catch {
    return undefined;
  }
}

/** The repository name a `repositories/<name>/…` driver path belongs to (for catalog walks). */
export function repositoryOfPath(p: string): string | undefined {
  if (!p.startsWith(`${REPOSITORIES}/`)) return undefined;
  const rest = p.slice(REPOSITORIES.length + 1).split('/');
  const i = rest.findIndex((c) => c.startsWith('_'));
  const name = (i === -1 ? rest : rest.slice(0, i)).join('/');
  return isValidRepositoryPath(name) ? name : undefined;
}
