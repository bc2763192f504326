// Image operations with dockerd's (20.10 graphdriver image service) rules and
// wording: resolve, tag, list, inspect, delete (`docker rmi`).
import { BerthError, conflict, invalidArgument, isKind } from '../errors/index.js';
import {
  type Digest,
  familiarName,
  familiarString,
  parseNormalizedReference,
  type Reference,
  withDefaultTag,
} from '../oci/index.js';
import type { Image, ImageId, ImageStore } from './image-store.js';
import { msg } from './messages.js';
import { type ContainerUsage, noContainers } from './ports.js';
import type { ReferenceStore } from './reference-store.js';

export type DeleteRecord = { Untagged: string } | { Deleted: string };

export interface ImageSummary {
  Containers: number;
  Created: number;
  Id: string;
  Labels: Record<string, string> | null;
  ParentId: string;
  RepoDigests: string[];
  RepoTags: string[];
  SharedSize: number;
  Size: number;
  VirtualSize: number;
}

const HEX64 = /^[a-f0-9]{64}$/;

/** moby ParseAnyReference's digest forms: bare 64-hex or `sha256:<64 hex>`. */
function asImageId(s: string): ImageId | undefined {
  if (HEX64.test(s)) return `sha256:${s}` as ImageId;
  if (s.startsWith('sha256:') && HEX64.test(s.slice(7))) return s as ImageId;
  return undefined;
}

const isCanonical = (r: Reference) => r.digest !== undefined;
const sameName = (a: Reference, b: Reference) => a.domain === b.domain && a.path === b.path;

export class ImageService {
  constructor(
    readonly images: ImageStore,
    readonly refs: ReferenceStore,
    private readonly containers: ContainerUsage = noContainers,
  ) {}

  /** Resolves an image ID, ID prefix, name[:tag] or name@digest (moby GetImage). */
  getImage(refOrId: string): Image {
    const id = asImageId(refOrId);
    if (id) {
      if (this.images.has(id)) return this.images.get(id);
      throw new BerthError('not-found', msg.noSuchImage(id));
    }
    let named: Reference;
    try {
      named = parseNormalizedReference(refOrId);
    } catch (e) {
      throw invalidArgument((e as Error).message, e);
    }
    try {
      const byRef = this.refs.get(named);
      if (this.images.has(byRef)) return this.images.get(byRef);
    } catch (e) {
      if (!isKind(e, 'not-found')) throw e;
    }
    try {
      return this.images.get(this.images.search(refOrId));
    } catch {
      throw new BerthError('not-found', msg.noSuchImage(familiarString(withDefaultTag(named))));
    }
  }

  /** `docker tag SOURCE TARGET`: always overwrites TARGET, updates lastUpdated. */
  tag(source: string, target: string): Reference {
    const img = this.getImage(source);
    const ref = parseNormalizedReference(target);
    if (ref.digest) throw invalidArgument(msg.tagWithDigest);
    const tagged = withDefaultTag(ref);
    this.refs.addTag(tagged, img.id, true);
    this.images.setLastUpdated(img.id);
    return tagged;
  }

  repoTags(id: ImageId): string[] {
    return this.refs
      .references(id)
      .filter((r) => !isCanonical(r))
      .map(familiarString);
  }

  repoDigests(id: ImageId): string[] {
    return this.refs.references(id).filter(isCanonical).map(familiarString);
  }

  /** `docker images` (API /images/json) without filters other than dangling. */
  list(opts: { all?: boolean; dangling?: boolean } = {}): ImageSummary[] {
    const source = opts.dangling ? this.images.heads() : this.images.map();
    const out: ImageSummary[] = [];
    for (const [id, img] of source) {
      let repoTags = this.repoTags(id);
      let repoDigests = this.repoDigests(id);
      if (repoTags.length === 0 && repoDigests.length === 0) {
        if (!(opts.all || this.images.children(id).length === 0)) continue;
        if (opts.dangling === false) continue;
        repoTags = ['<none>:<none>'];
        repoDigests = ['<none>@<none>'];
      } else if (opts.dangling && repoTags.length > 0) continue;
      const size = this.images.size(id);
      out.push({
        Containers: -1,
        Created: img.config.created ? Math.floor(Date.parse(img.config.created) / 1000) : 0,
        Id: id,
        Labels: img.config.config?.Labels ?? null,
        ParentId: img.parent ?? '',
        RepoDigests: repoDigests,
        RepoTags: repoTags,
        SharedSize: -1,
        Size: size,
        VirtualSize: size,
      });
    }
    return out.sort((a, b) => b.Created - a.Created);
  }

  /** The fields of `docker inspect` that come from the image store. */
  inspect(refOrId: string) {
    const img = this.getImage(refOrId);
    const c = img.config;
    const size = this.images.size(img.id);
    return {
      Id: img.id,
      RepoTags: this.repoTags(img.id),
      RepoDigests: this.repoDigests(img.id),
      Parent: img.parent ?? '',
      Comment: c.comment ?? '',
      Created: c.created ?? '',
      Container: c.container ?? '',
      ContainerConfig: c.container_config,
      DockerVersion: c.docker_version ?? '',
      Author: c.author ?? '',
      Config: c.config,
      Architecture: c.architecture,
      ...(c.variant ? { Variant: c.variant } : {}),
      Os: c.os,
      Size: size,
      VirtualSize: size,
      RootFS: { Type: c.rootfs.type, Layers: c.rootfs.diff_ids },
      Metadata: { LastTagTime: this.images.getLastUpdated(img.id)?.toISOString() ?? '0001-01-01T00:00:00Z' },
    };
  }

  /** `docker rmi` (moby ImageDelete): untag by reference, delete by ID, prune parents. */
  async delete(imageRef: string, opts: { force?: boolean; prune?: boolean } = {}): Promise<DeleteRecord[]> {
    const force = !!opts.force;
    const prune = opts.prune ?? true;
    const records: DeleteRecord[] = [];
    const img = this.getImage(imageRef);
    const imgId = img.id;
    let repoRefs = this.refs.references(imgId);
    let removedRepositoryRef = false;

    if (!isImageIdPrefix(imgId, imageRef)) {
      if (!force && isSingleReference(repoRefs)) {
        const c = this.containers.firstUsing(imgId);
        if (c) throw conflict(msg.refInUse(imageRef, c, imgId));
      }
      const parsed = withDefaultTag(parseNormalizedReference(imageRef));
      this.removeRef(parsed);
      records.push({ Untagged: familiarString(parsed) });
      repoRefs = this.refs.references(imgId);
      if (!isCanonical(parsed)) {
        const tagLeft = repoRefs.some((r) => !isCanonical(r) && sameName(r, parsed));
        if (!tagLeft) {
          const remaining: Reference[] = [];
          for (const r of repoRefs) {
            if (isCanonical(r) && sameName(r, parsed)) {
              this.removeRef(r);
              records.push({ Untagged: familiarString(r) });
            } else remaining.push(r);
          }
          repoRefs = remaining;
        }
      }
      if (repoRefs.length > 0) return records;
      removedRepositoryRef = true;
    } else if (isSingleReference(repoRefs)) {
      const err = this.checkConflict(imgId, { hard: true, soft: !force, activeReference: false });
      if (err) throw err;
      for (const r of repoRefs) {
        this.removeRef(r);
        records.push({ Untagged: familiarString(withDefaultTag(r)) });
      }
    }
    await this.deleteHelper(imgId, records, force, prune, removedRepositoryRef);
    return records;
  }

  private removeRef(r: Reference): void {
    try {
      this.refs.delete(withDefaultTag(r));
    } catch (e) {
      if (!isKind(e, 'not-found')) throw e;
    }
  }

  private checkConflict(
    id: ImageId,
    mask: { hard: boolean; soft: boolean; activeReference?: boolean },
  ): (BerthError & { used?: boolean }) | undefined {
    if (mask.hard && this.images.children(id).length > 0) {
      return conflict(msg.deleteConflict(id, true, msg.dependentChildren));
    }
    if (mask.hard) {
      const c = this.containers.firstUsing(id, 'running');
      if (c) return Object.assign(conflict(msg.deleteConflict(id, true, msg.runningContainer(c))), { used: true });
    }
    if (mask.soft && mask.activeReference !== false && this.refs.references(id).length > 0) {
      return conflict(msg.deleteConflict(id, false, msg.multipleRepositories));
    }
    if (mask.soft) {
      const c = this.containers.firstUsing(id, 'stopped');
      if (c) return Object.assign(conflict(msg.deleteConflict(id, false, msg.stoppedContainer(c))), { used: true });
    }
    return undefined;
  }

  private isDangling(id: ImageId): boolean {
    return this.refs.references(id).length === 0 && this.images.children(id).length === 0;
  }

  private async deleteHelper(
    id: ImageId,
    records: DeleteRecord[],
    force: boolean,
    prune: boolean,
    quiet: boolean,
  ): Promise<void> {
    const err = this.checkConflict(id, { hard: true, soft: !force });
    if (err) {
      if (quiet && (!this.isDangling(id) || err.used)) return;
      throw err;
    }
    const parent = this.images.getParent(id);
    for (const r of this.refs.references(id)) {
      this.removeRef(r);
      records.push({ Untagged: familiarString(withDefaultTag(r)) });
    }
    const removedLayers = await this.images.delete(id);
    records.push({ Deleted: id });
    for (const l of removedLayers) records.push({ Deleted: l });
    if (!prune || !parent || !this.images.has(parent)) return;
    await this.deleteHelper(parent, records, false, true, true);
  }

  /** Name of a repository as `docker images` shows it. */
  static repositoryOf(ref: Reference): string {
    return familiarName(ref);
  }
}

function isImageIdPrefix(imageId: Digest, prefix: string): boolean {
  if (imageId.startsWith(prefix)) return true;
  return imageId.slice(imageId.indexOf(':') + 1).startsWith(prefix);
}

/** All references are in one repository and there is at most one tag (false for none). */
function isSingleReference(refs: Reference[]): boolean {
  if (refs.length <= 1) return refs.length === 1;
  let single: Reference | undefined;
  const canonicalNames = new Set<string>();
  for (const r of refs) {
    if (isCanonical(r)) canonicalNames.add(`${r.domain}/${r.path}`);
    else if (!single) single = r;
    else return false;
  }
  const s = single ?? refs[0]!;
  return canonicalNames.size === 1 && canonicalNames.has(`${s.domain}/${s.path}`);
}
