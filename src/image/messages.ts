// dockerd's wording for image errors (users and scripts match on these).
import type { Digest } from '../oci/index.js';

export const shortId = (id: string) => (id.includes(':') ? id.slice(id.indexOf(':') + 1) : id).slice(0, 12);

export const msg = {
  noSuchImage: (familiar: string) => `No such image: ${familiar}`,
  ambiguousDigest: 'ambiguous digest string',
  digestNotFound: 'digest not found',
  tooManyHistory: 'too many non-empty layers in History section',
  failedToGetLayer: (chainId: Digest, cause: string) => `failed to get layer ${chainId}: ${cause}`,
  unrecognizedImage: (id: Digest) => `unrecognized image ID ${id}`,
  unknownParent: (id: Digest) => `unknown parent image ID ${id}`,
  refDoesNotExist: 'reference does not exist',
  tagWithDigest: 'refusing to create a tag with a digest reference',
  ambiguousTagName: 'refusing to create an ambiguous tag using digest algorithm as name',
  cannotOverwriteDigest: (d: string) => `Cannot overwrite digest ${d}`,
  tagConflict: (ref: string, old: string) =>
    `Conflict: Tag ${ref} is already set to image ${old}, if you want to replace it, please use the force option`,
  deleteConflict: (id: string, hard: boolean, why: string) =>
    `conflict: unable to delete ${shortId(id)} (${hard ? 'cannot be forced' : 'must be forced'}) - ${why}`,
  multipleRepositories: 'image is referenced in multiple repositories',
  dependentChildren: 'image has dependent child images',
  runningContainer: (c: string) => `image is being used by running container ${shortId(c)}`,
  stoppedContainer: (c: string) => `image is being used by stopped container ${shortId(c)}`,
  refInUse: (ref: string, c: string, id: string) =>
    `conflict: unable to remove repository reference "${ref}" (must force) - container ${shortId(c)} is using its referenced image ${shortId(id)}`,
};
