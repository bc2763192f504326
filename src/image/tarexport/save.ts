// `docker save` in the Docker 20.10 format:
//   <v1id>/VERSION ("1.0"), <v1id>/json (legacy v1 config), <v1id>/layer.tar
//   (a layer seen before under another v1 ID is a symlink ../<first v1id>/layer.tar),
//   <image hex>.json (raw config), manifest.json, repositories.
// Entries are written in lexical order as moby's directory walk does. Layer
// tars are spooled one at a time to a temp file under `<tmpRoot>` (their size
// goes in the tar header first), checked against the diff ID, then streamed.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { internal, invalidArgument } from '../../errors/index.js';
import {
  chainIds,
  type Digest,
  digestHex,
  familiarName,
  familiarString,
  goJsonString,
  isDigest,
  parseNormalizedReference,
  type Reference,
  withDefaultTag,
} from '../../oci/index.js';
import type { Image, ImageId, ImageStore } from '../image-store.js';
import type { LayerGetReleaser } from '../ports.js';
import type { ReferenceStore } from '../reference-store.js';
import { TarWriter } from './tar.js';
import { createV1Id, encodeV1Json, goValue, type V1Fields } from './v1-json.js';

export interface SaveDeps {
  images: ImageStore;
  refs: ReferenceStore;
  layers: LayerGetReleaser;
  tmpRoot: string;
}

interface Selected {
  image: Image;
  tags: Reference[];
}

const HEX64 = /^[a-f0-9]{64}$/;

/** moby parseNames: IDs, ID prefixes, name (all its tags), name:tag, name@digest. */
export function selectImages(names: string[], images: ImageStore, refs: ReferenceStore): Map<ImageId, Selected> {
  const out = new Map<ImageId, Selected>();
  const add = (id: ImageId, ref?: Reference) => {
    let s = out.get(id);
    if (!s) {
      s = { image: images.get(id), tags: [] };
      out.set(id, s);
    }
    if (!ref || ref.digest) return;
    const t = withDefaultTag(ref);
    if (!s.tags.some((x) => familiarString(x) === familiarString(t))) s.tags.push(t);
  };
  for (const name of names) {
    if (HEX64.test(name) || (name.startsWith('sha256:') && isDigest(name))) {
      add(images.search(name));
      continue;
    }
    const named = parseNormalizedReference(name);
    if (familiarName(named) === 'sha256') {
      add(images.search(name));
      continue;
    }
    if (!named.tag && !named.digest) {
      const assocs = refs.referencesByName(named);
      for (const a of assocs) add(a.id, a.ref);
      if (assocs.length === 0) add(images.search(name));
      continue;
    }
    add(refs.get(named), named);
  }
  return out;
}

interface LayerPlan {
  v1id: string;
  chainId: Digest;
  diffId: Digest;
  json: string;
  /** v1 dir of the first occurrence of this layer, when this one is a symlink. */
  linkTo?: string;
  mtime: number;
}

function v1FieldsOf(img: Image): V1Fields {
  const c = img.config as unknown as Record<string, unknown>;
  const str = (k: string) => (typeof c[k] === 'string' ? (c[k] as string) : undefined);
  const obj = (k: string) => (c[k] && typeof c[k] === 'object' ? (c[k] as Record<string, unknown>) : undefined);
  const f: V1Fields = { created: str('created') ?? '' };
  const opt: [keyof V1Fields, string | Record<string, unknown> | undefined][] = [
    ['id', str('id')],
    ['comment', str('comment')],
    ['container', str('container')],
    ['container_config', obj('container_config')],
    ['docker_version', str('docker_version')],
    ['author', str('author')],
    ['config', obj('config')],
    ['architecture', str('architecture')],
    ['variant', str('variant')],
    ['os', str('os')],
  ];
  for (const [k, v] of opt) if (v !== undefined) (f as unknown as Record<string, unknown>)[k] = v;
  if (typeof c.Size === 'number') f.Size = c.Size;
  if (!f.created) f.created = '0001-01-01T00:00:00Z';
  return f;
}

const createdSeconds = (img: Image) => {
  const t = img.config.created ? Date.parse(img.config.created) : Number.NaN;
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
};

/** Writes a 20.10-format save tar of `names` to `out`. */
export async function saveImages(names: string[], out: Writable, deps: SaveDeps): Promise<void> {
  const selected = selectImages(names, deps.images, deps.refs);
  const held: Digest[] = [];
  const layers: LayerPlan[] = [];
  const firstDirOfDiff = new Map<Digest, string>();
  const seenV1 = new Set<string>();
  const manifest: string[] = [];
  const reposLegacy = new Map<string, Map<string, string>>();
  const configs: { name: string; raw: Buffer; mtime: number }[] = [];
  const v1TopOf = new Map<ImageId, string>();
  try {
    for (const [id, s] of selected) {
      const img = s.image;
      const diffIds = img.config.rootfs.diff_ids;
      if (diffIds.length === 0) throw invalidArgument('empty export - not implemented');
      const chain = chainIds(diffIds);
      deps.layers.get(chain.at(-1)!);
      held.push(chain.at(-1)!);
      let parent: Digest | undefined;
      const layerPaths: string[] = [];
      const mtime = createdSeconds(img);
      for (let i = 0; i < diffIds.length; i++) {
        const top = i === diffIds.length - 1;
        const base: V1Fields = top ? v1FieldsOf(img) : { created: '1970-01-01T00:00:00Z' };
        const v1id = createV1Id(base, chain[i]!, parent);
        const fields: V1Fields = { ...base, id: digestHex(v1id), os: img.config.os };
        if (parent) fields.parent = digestHex(parent);
        const dir = digestHex(v1id);
        if (!seenV1.has(dir)) {
          seenV1.add(dir);
          const first = firstDirOfDiff.get(diffIds[i]!);
          layers.push({
            v1id: dir,
            chainId: chain[i]!,
            diffId: diffIds[i]!,
            json: encodeV1Json(fields),
            mtime,
            ...(first ? { linkTo: first } : {}),
          });
          if (!first) firstDirOfDiff.set(diffIds[i]!, dir);
        }
        layerPaths.push(`${dir}/layer.tar`);
        parent = v1id;
      }
      v1TopOf.set(id, digestHex(parent!));
      configs.push({ name: `${digestHex(id)}.json`, raw: img.raw, mtime });
      const repoTags = s.tags.map(familiarString);
      for (const t of s.tags) {
        const n = familiarName(t);
        if (!reposLegacy.has(n)) reposLegacy.set(n, new Map());
        reposLegacy.get(n)!.set(t.tag!, digestHex(parent!));
      }
      const parentId = deps.images.getParent(id);
      const parentField =
        parentId && parentId !== id && selected.has(parentId) ? `,"Parent":${goJsonString(parentId)}` : '';
      manifest.push(
        `{"Config":${goJsonString(`${digestHex(id)}.json`)},"RepoTags":${repoTags.length ? goValue(repoTags) : 'null'},"Layers":${goValue(layerPaths)}${parentField}}`,
      );
    }

    const tw = new TarWriter(out);
    type Entry = { name: string; write: () => Promise<void> };
    const entries: Entry[] = [];
    for (const l of layers) {
      entries.push({
        name: `${l.v1id}/`,
        write: () => tw.header({ name: `${l.v1id}/`, type: 'dir', mode: 0o755, mtime: l.mtime }),
      });
      entries.push({
        name: `${l.v1id}/VERSION`,
        write: () => tw.file(`${l.v1id}/VERSION`, Buffer.from('1.0'), { mtime: l.mtime }),
      });
      entries.push({
        name: `${l.v1id}/json`,
        write: () => tw.file(`${l.v1id}/json`, Buffer.from(l.json), { mtime: l.mtime }),
      });
      entries.push({
        name: `${l.v1id}/layer.tar`,
        write: () =>
          l.linkTo
            ? tw.header({
                name: `${l.v1id}/layer.tar`,
                type: 'symlink',
                linkname: `../${l.linkTo}/layer.tar`,
                mode: 0o777,
                mtime: l.mtime,
              })
            : writeLayer(tw, l, deps),
      });
    }
    for (const c of configs) entries.push({ name: c.name, write: () => tw.file(c.name, c.raw, { mtime: c.mtime }) });
    entries.push({
      name: 'manifest.json',
      write: () => tw.file('manifest.json', Buffer.from(`[${manifest.join(',')}]\n`), { mtime: 0 }),
    });
    if (reposLegacy.size > 0) {
      const obj: Record<string, Record<string, string>> = {};
      for (const [n, m] of reposLegacy) obj[n] = Object.fromEntries(m);
      entries.push({
        name: 'repositories',
        write: () => tw.file('repositories', Buffer.from(`${goValue(obj)}\n`), { mtime: 0 }),
      });
    }
    entries.sort((a, b) => (a.name.replace(/\/$/, '') < b.name.replace(/\/$/, '') ? -1 : 1));
    for (const e of entries) await e.write();
    await tw.end();
  } finally {
    for (const c of held) await deps.layers.release(c).catch(() => {});
  }
}

async function writeLayer(tw: TarWriter, l: LayerPlan, deps: SaveDeps): Promise<void> {
  await fsp.mkdir(deps.tmpRoot, { recursive: true, mode: 0o700 });
  const dir = await fsp.mkdtemp(path.join(deps.tmpRoot, 'docker-export-'));
  const file = path.join(dir, 'layer.tar');
  const layer = deps.layers.get(l.chainId);
  try {
    const hash = createHash('sha256');
    const src = layer.tarStream();
    src.on('data', (c) => hash.update(c as Buffer));
    await pipeline(src, fs.createWriteStream(file, { mode: 0o600 }));
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== l.diffId)
      throw internal(`layer ${l.chainId}: tar stream digest ${got} does not match diff ID ${l.diffId}`);
    const { size } = await fsp.stat(file);
    await tw.stream(`${l.v1id}/layer.tar`, size, fs.createReadStream(file), { mtime: l.mtime });
  } finally {
    await deps.layers.release(l.chainId).catch(() => {});
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
