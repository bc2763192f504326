// Image operations behind the Engine API (moby daemon/images/*.go for the
// graphdriver image service of dockerd 20.10): list with filters, inspect,
// history, tag, delete, prune, load, save, import, disk usage. Composes
// src/image (rules and on-disk formats) with the layer store and events.
import { randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { decompressStream } from '../archive/index.js';
import { BerthError, invalidArgument, isKind, notFound } from '../errors/index.js';
import {
  type ContainerUsage,
  type DeleteRecord,
  type Image,
  type ImageId,
  ImageService,
  type ImageStore,
  loadImages,
  noContainers,
  type ReferenceStore,
  rfc3339NanoNow,
  saveImages,
  selectImages,
} from '../image/index.js';
import type { LayerStore } from '../layer/index.js';
import { type Logger, nullLogger } from '../log/index.js';
import {
  chainIds,
  type Digest,
  familiarName,
  familiarString,
  parseNormalizedReference,
  type Reference,
  withDefaultTag,
} from '../oci/index.js';
import { nullProgress, type ProgressSink } from '../progress/index.js';
import { applyChanges, emptyContainerConfig, orderContainerConfig } from './changes.js';
import type { EventsService } from './events.js';
import { parseTimestamp } from './timeutil.js';

/** What the daemon needs of a parsed `filters` parameter (src/api's Filters satisfies it). */
export interface FilterArgs {
  validate(accepted: Iterable<string>): unknown;
  contains(key: string): boolean;
  get(key: string): string[];
  matchKVList(key: string, labels: Record<string, string> | null | undefined): boolean;
}

export interface ImageSummary {
  Containers: number;
  Created: number;
  Id: string;
  Labels: Record<string, string> | null;
  ParentId: string;
  RepoDigests: string[] | null;
  RepoTags: string[] | null;
  SharedSize: number;
  Size: number;
  VirtualSize: number;
}

export interface HistoryItem {
  Comment: string;
  Created: number;
  CreatedBy: string;
  Id: string;
  Size: number;
  Tags: string[] | null;
}

export interface ImportOptions {
  src: string;
  repo?: string;
  tag?: string;
  message?: string;
  changes?: string[];
  platform?: { os: string; architecture?: string; variant?: string };
}

const LIST_FILTERS = ['dangling', 'label', 'before', 'since', 'reference'];
const PRUNE_FILTERS = ['dangling', 'label', 'label!', 'until'];

/** dockerd 20.10's wording of reference errors (newer parsers name the repository). */
function refError(e: unknown): BerthError {
  const m = (e as Error).message.replace(
    /repository name \([^)]*\) must be lowercase/,
    'repository name must be lowercase',
  );
  return invalidArgument(m, e);
}

/** Go's path.Match as a RegExp (`*`, `?`, `[...]`, `\` escapes; never across `/`). */
export function pathMatchRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw invalidArgument('syntax error in pattern');
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += ch.replace(/[.+^${}()|\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function familiarMatch(pattern: RegExp, ref: Reference): boolean {
  return pattern.test(familiarString(ref)) || pattern.test(familiarName(ref));
}

const createdSeconds = (img: Image) => {
  const t = img.config.created ? Date.parse(img.config.created) : Number.NaN;
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
};
const createdPrecise = (img: Image) => {
  const s = img.config.created ?? '';
  const t = Date.parse(s);
  if (Number.isNaN(t)) return 0;
  const frac = /\.(\d+)/.exec(s.slice(19))?.[1];
  return frac && frac.length > 3 ? Math.floor(t / 1000) + Number(`0.${frac}`) : t / 1000;
};

/** Sorted-key JSON of an image config at the top level, as moby's image.MarshalJSON writes it. */
function marshalImageConfig(c: Record<string, unknown>): Buffer {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(c).sort()) if (c[k] !== undefined) out[k] = c[k];
  return Buffer.from(JSON.stringify(out));
}

export interface ImagesDeps {
  layers: LayerStore;
  images: ImageStore;
  refs: ReferenceStore;
  events: EventsService;
  tmpRoot: string;
  containers?: ContainerUsage;
  logger?: Logger;
  /** Docker version string written into imported images (docker_version). */
  dockerVersion: string;
  architecture: string;
}

export class ImagesService {
  readonly service: ImageService;
  private readonly log: Logger;
  private readonly containers: ContainerUsage;

  constructor(private readonly d: ImagesDeps) {
    this.containers = d.containers ?? noContainers;
    this.service = new ImageService(d.images, d.refs, this.containers);
    this.log = d.logger ?? nullLogger;
  }

  get count(): number {
    return this.d.images.length;
  }

  private labelsOf(id: ImageId): Record<string, string> {
    try {
      return { ...(this.d.images.get(id).config.config?.Labels ?? {}) };
    } catch {
      return {};
    }
  }

  /** moby LogImageEvent: actor = image ID, attributes = image labels + name. */
  private event(id: string, name: string, action: string): void {
    const attrs = this.d.images.has(id as ImageId) ? this.labelsOf(id as ImageId) : {};
    if (name) attrs.name = name;
    this.d.events.log('image', action, { ID: id, Attributes: attrs });
  }

  // ---- list ---------------------------------------------------------------

  /** GET /images/json (moby ImageService.Images, 20.10). */
  list(opts: { all?: boolean; filters?: FilterArgs; withExtraAttrs?: boolean }): ImageSummary[] {
    const f = opts.filters;
    f?.validate(LIST_FILTERS);
    let danglingOnly = false;
    if (f?.contains('dangling')) {
      const vals = f.get('dangling');
      if (vals.includes('true')) danglingOnly = true;
      else if (!vals.every((v) => v === 'false')) {
        throw invalidArgument(`Invalid filter 'dangling=[${vals.join(' ')}]'`);
      }
    }
    let before: number | undefined;
    let since: number | undefined;
    for (const v of f?.get('before') ?? []) before = createdPrecise(this.service.getImage(v));
    for (const v of f?.get('since') ?? []) since = createdPrecise(this.service.getImage(v));
    const patterns = f?.contains('reference') ? f.get('reference').map(pathMatchRegExp) : undefined;

    const source = danglingOnly ? this.d.images.heads() : this.d.images.map();
    const layerSize = new Map(this.d.layers.list().map((l) => [l.chainId, l.size]));
    const layerRefs = new Map<Digest, number>();
    const listed: { img: Image; s: ImageSummary }[] = [];
    for (const [id, img] of source) {
      const created = createdPrecise(img);
      if (before !== undefined && !(created < before)) continue;
      if (since !== undefined && !(created > since)) continue;
      if (f?.contains('label') && !f.matchKVList('label', img.config.config?.Labels)) continue;
      let repoTags: string[] | null = null;
      let repoDigests: string[] | null = null;
      for (const ref of this.d.refs.references(id)) {
        if (patterns && !patterns.some((p) => familiarMatch(p, ref))) continue;
        if (ref.digest) {
          repoDigests = repoDigests ?? [];
          repoDigests.push(familiarString(ref));
        }
        if (ref.tag) {
          repoTags = repoTags ?? [];
          repoTags.push(familiarString(ref));
        }
      }
      if (repoTags === null && repoDigests === null) {
        if (!(opts.all || this.d.images.children(id).length === 0)) continue;
        if (f?.contains('dangling') && !danglingOnly) continue;
        if (patterns) continue;
        repoDigests = ['<none>@<none>'];
        repoTags = ['<none>:<none>'];
      } else if (danglingOnly && repoTags !== null) continue;
      const size = this.d.images.size(id);
      const s: ImageSummary = {
        Containers: -1,
        Created: createdSeconds(img),
        Id: id,
        Labels: img.config.config?.Labels ?? null,
        ParentId: img.parent ?? '',
        RepoDigests: repoDigests ?? [],
        RepoTags: repoTags ?? [],
        SharedSize: -1,
        Size: size,
        VirtualSize: size,
      };
      if (opts.withExtraAttrs) {
        s.Containers = 0;
        for (const c of chainIds(img.config.rootfs.diff_ids)) layerRefs.set(c, (layerRefs.get(c) ?? 0) + 1);
      }
      listed.push({ img, s });
    }
    if (opts.withExtraAttrs) {
      for (const { img, s } of listed) {
        s.SharedSize = 0;
        for (const c of chainIds(img.config.rootfs.diff_ids)) {
          if ((layerRefs.get(c) ?? 0) > 1) s.SharedSize += layerSize.get(c) ?? 0;
        }
      }
    }
    return listed.map((x) => x.s).sort((a, b) => b.Created - a.Created);
  }

  // ---- inspect / history ---------------------------------------------------

  /** GET /images/{name}/json. */
  async inspect(name: string): Promise<Record<string, unknown>> {
    let base: ReturnType<ImageService['inspect']>;
    try {
      base = this.service.inspect(name);
    } catch (e) {
      if (isKind(e, 'not-found')) throw notFound(`no such image: ${name}: ${(e as Error).message}`, e);
      throw e;
    }
    const img = this.d.images.get(base.Id as ImageId);
    const chain = chainIds(img.config.rootfs.diff_ids);
    const top = chain[chain.length - 1];
    let data: Record<string, string> | null = null;
    if (top) {
      const l = this.d.layers.peek(top);
      if (l) data = await l.metadata();
    }
    const { Metadata, RootFS, ...rest } = base;
    const out: Record<string, unknown> = {
      ...rest,
      ContainerConfig: orderContainerConfig(
        (base.ContainerConfig as unknown as Record<string, unknown>) ?? emptyContainerConfig(),
      ),
      Config: base.Config ? orderContainerConfig(base.Config as unknown as Record<string, unknown>) : null,
      GraphDriver: { Data: data, Name: this.d.layers.driver.name },
      RootFS: RootFS.Layers.length ? RootFS : { Type: RootFS.Type },
      Metadata,
    };
    return out;
  }

  /** GET /images/{name}/history (moby ImageHistory). */
  history(name: string): HistoryItem[] {
    const img = this.service.getImage(name);
    const items: HistoryItem[] = [];
    const diffIds = img.config.rootfs.diff_ids;
    const chain = chainIds(diffIds);
    let n = 0;
    for (const h of img.config.history ?? []) {
      let size = 0;
      if (!h.empty_layer) {
        const c = chain[n];
        if (!c) throw new BerthError('internal', 'too many non-empty layers in History section');
        size = this.d.layers.peek(c)?.size ?? 0;
        n++;
      }
      const t = h.created ? Date.parse(h.created) : Number.NaN;
      items.unshift({
        Comment: h.comment ?? '',
        Created: Number.isNaN(t) ? 0 : Math.floor(t / 1000),
        CreatedBy: h.created_by ?? '',
        Id: '<missing>',
        Size: size,
        Tags: null,
      });
    }
    let cur: Image | undefined = img;
    for (const h of items) {
      if (!cur) break;
      h.Id = cur.id;
      const tags = this.d.refs
        .references(cur.id)
        .filter((r) => r.tag)
        .map(familiarString);
      h.Tags = tags.length ? tags : null;
      const parent: ImageId | undefined = cur.parent ?? this.d.images.getParent(cur.id);
      cur = parent && this.d.images.has(parent) ? this.d.images.get(parent) : undefined;
      if (!parent) break;
    }
    return items;
  }

  // ---- tag / delete / prune ------------------------------------------------

  /** POST /images/{name}/tag (moby TagImage). */
  tag(name: string, repo: string, tag: string): string {
    const img = this.service.getImage(name);
    let ref: Reference;
    try {
      ref = parseNormalizedReference(repo);
    } catch (e) {
      throw refError(e);
    }
    if (tag !== '') {
      ref = { domain: ref.domain, path: ref.path, tag } as Reference;
      try {
        ref = parseNormalizedReference(familiarString(ref));
      } catch (e) {
        throw refError(e);
      }
    }
    if (ref.digest) throw invalidArgument('refusing to create a tag with a digest reference');
    const tagged = withDefaultTag(ref);
    this.d.refs.addTag(tagged, img.id, true);
    this.d.images.setLastUpdated(img.id);
    const fam = familiarString(tagged);
    this.event(img.id, fam, 'tag');
    return fam;
  }

  /** DELETE /images/{name} (moby ImageDelete). */
  async delete(name: string, opts: { force?: boolean; prune?: boolean }): Promise<DeleteRecord[]> {
    const img = this.service.getImage(name);
    const before = new Set(this.d.images.ids());
    const labels = this.labelsOf(img.id);
    const records = await this.service.delete(name, opts);
    for (const r of records) {
      if ('Untagged' in r) {
        this.d.events.log('image', 'untag', { ID: img.id, Attributes: { ...labels, name: img.id } });
      } else if (before.has(r.Deleted as ImageId)) {
        this.d.events.log('image', 'delete', { ID: r.Deleted, Attributes: { name: r.Deleted } });
      }
    }
    return records;
  }

  /** POST /images/prune (moby ImagesPrune, 20.10). */
  async prune(filters?: FilterArgs): Promise<{ ImagesDeleted: DeleteRecord[] | null; SpaceReclaimed: number }> {
    filters?.validate(PRUNE_FILTERS);
    let danglingOnly = true;
    if (filters?.contains('dangling')) {
      const vals = filters.get('dangling');
      if (vals.some((v) => v === 'false' || v === '0')) danglingOnly = false;
      else if (!vals.every((v) => v === 'true' || v === '1')) {
        throw invalidArgument(`Invalid filter 'dangling=[${vals.join(' ')}]'`);
      }
    }
    let until: number | undefined;
    const untils = filters?.get('until') ?? [];
    if (untils.length > 1) throw invalidArgument('more than one until filter specified');
    if (untils[0] !== undefined) until = parseTimestamp(untils[0]);
    const all = danglingOnly ? this.d.images.heads() : this.d.images.map();
    const layerSize = new Map(this.d.layers.list().map((l) => [l.chainId as string, l.size]));
    const top: Image[] = [];
    for (const [id, img] of all) {
      if (this.d.refs.references(id).length === 0 && this.d.images.children(id).length !== 0) continue;
      if (!danglingOnly && this.containers.firstUsing(id)) continue;
      if (until !== undefined && createdPrecise(img) > until) continue;
      const labels = img.config.config?.Labels;
      if (filters && !matchPruneLabels(filters, labels)) continue;
      top.push(img);
    }
    const deleted: DeleteRecord[] = [];
    const tryDelete = async (ref: string) => {
      try {
        deleted.push(...(await this.delete(ref, { force: false, prune: true })));
      } catch (e) {
        if (!isKind(e, 'conflict') && !isKind(e, 'not-found')) {
          this.log.warn(`failed to prune image ${ref}: ${(e as Error).message}`);
        }
      }
    };
    for (const img of top) {
      if (!this.d.images.has(img.id)) continue;
      const refs = this.d.refs.references(img.id);
      if (refs.length > 0) {
        const shouldDelete = !danglingOnly || !refs.some((r) => r.tag);
        if (shouldDelete) for (const r of refs) await tryDelete(familiarString(r));
      } else {
        await tryDelete(img.id.slice(7));
      }
    }
    let space = 0;
    for (const r of deleted) if ('Deleted' in r) space += layerSize.get(r.Deleted) ?? 0;
    return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: space };
  }

  // ---- load / save / import -------------------------------------------------

  /** POST /images/load. */
  async load(input: Readable, sink: ProgressSink = nullProgress): Promise<void> {
    const r = await loadImages(input, {
      images: this.d.images,
      refs: this.d.refs,
      layers: this.d.layers,
      tmpRoot: this.d.tmpRoot,
    });
    for (const img of r.images) this.event(img.id, img.id, 'load');
    for (const m of r.messages) sink.stream(m);
  }

  /** Resolves the names of `docker save` first, so errors come before any byte is written. */
  checkSave(names: string[]): void {
    if (names.length === 0) throw invalidArgument('no images specified');
    try {
      selectImages(names, this.d.images, this.d.refs);
    } catch (e) {
      if (isKind(e, 'not-found') || e instanceof BerthError) throw e;
      throw invalidArgument((e as Error).message, e);
    }
  }

  /** GET /images/get, /images/{name}/get. */
  async save(names: string[], out: Writable): Promise<void> {
    const sel = selectImages(names, this.d.images, this.d.refs);
    await saveImages(names, out, {
      images: this.d.images,
      refs: this.d.refs,
      layers: this.d.layers,
      tmpRoot: this.d.tmpRoot,
    });
    for (const id of sel.keys()) this.event(id, id, 'save');
  }

  /** POST /images/create?fromSrc=… (moby ImportImage). Returns the new image ID. */
  async import(body: Readable, o: ImportOptions, sink: ProgressSink = nullProgress): Promise<ImageId> {
    let newRef: Reference | undefined;
    if (o.repo) {
      try {
        newRef = parseNormalizedReference(o.repo);
        if (newRef.digest) throw invalidArgument('cannot import digest reference');
        if (o.tag) newRef = parseNormalizedReference(`${familiarName(newRef)}:${o.tag}`);
      } catch (e) {
        if (e instanceof BerthError) throw e;
        throw refError(e);
      }
    }
    if (o.platform && o.platform.os !== 'linux') throw invalidArgument(`unsupported os ${o.platform.os}`);
    const config = applyChanges(emptyContainerConfig(), o.changes ?? []);
    let src: Readable = body;
    if (o.src !== '-') {
      let u: URL;
      try {
        u = new URL(/^[a-z]+:\/\//i.test(o.src) ? o.src : `http://${o.src}`);
      } catch (e) {
        throw invalidArgument((e as Error).message, e);
      }
      const res = await fetch(u);
      if (!res.ok || !res.body) throw invalidArgument(`error downloading ${o.src}: ${res.status} ${res.statusText}`);
      sink.status('Downloading from', undefined);
      const { Readable: R } = await import('node:stream');
      src = R.fromWeb(res.body as import('node:stream/web').ReadableStream);
    }
    const layer = await this.d.layers.register(decompressStream(src));
    try {
      const created = rfc3339NanoNow();
      const msg = o.message || `Imported from ${o.src}`;
      const cfg: Record<string, unknown> = {
        architecture: o.platform?.architecture || this.d.architecture,
        comment: msg,
        config,
        container_config: emptyContainerConfig(),
        created,
        docker_version: this.d.dockerVersion,
        history: [{ created, comment: msg }],
        os: o.platform?.os || 'linux',
        rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      };
      if (o.platform?.variant) cfg.variant = o.platform.variant;
      const id = this.d.images.create(marshalImageConfig(cfg));
      if (newRef) {
        const tagged = withDefaultTag(newRef);
        this.d.refs.addTag(tagged, id, true);
        this.d.images.setLastUpdated(id);
        this.event(id, familiarString(tagged), 'tag');
      }
      this.event(id, id, 'import');
      sink.status(id);
      return id;
    } finally {
      await this.d.layers.release(layer.chainId);
    }
  }

  // ---- disk usage ---------------------------------------------------------

  /** The images part of GET /system/df. */
  diskUsage(): { LayersSize: number; Images: ImageSummary[] } {
    let layersSize = 0;
    for (const l of this.d.layers.list()) layersSize += l.size;
    const images = this.list({ withExtraAttrs: true }).map((s) => ({
      ...s,
      RepoDigests: s.RepoDigests?.length ? s.RepoDigests : null,
    }));
    return { LayersSize: layersSize, Images: images };
  }

  /** A fresh engine ID (for info). */
  static newId(): string {
    return randomBytes(16).toString('hex');
  }
}

/** moby matchLabels for prune: `label` (all must hold) and `label!` (none may hold). */
function matchPruneLabels(f: FilterArgs, labels: Record<string, string> | undefined | null): boolean {
  if (!f.matchKVList('label', labels ?? {})) return false;
  for (const want of f.get('label!')) {
    const i = want.indexOf('=');
    const l = labels ?? {};
    if (i < 0 ? want in l : l[want.slice(0, i)] === want.slice(i + 1)) return false;
  }
  return true;
}
