// `docker load`: reads a `docker save` tar (20.10: manifest.json + <v1id>/layer.tar;
// 25+: OCI layout with manifest.json pointing into blobs/sha256; an OCI layout
// without manifest.json is read through index.json) in ONE pass. dockerd spools
// the whole archive to disk and registers layers afterwards; berth extracts each
// layer straight from the stream as it passes (layer content does not depend on
// its parent: LayerRegistrar.stage), keeps the small JSON files in memory, and
// only once manifest.json has been read attaches the staged layers in order
// (commitStaged), creates the images from the raw config bytes and tags them.
// On any error every staged layer is discarded, every reference taken is
// released and nothing is tagged.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decompressor, detectCompression, looksLikeTar } from '../../archive/index.js';
import { invalidArgument, isKind } from '../../errors/index.js';
import {
  chainIds,
  type Digest,
  familiarString,
  type ImageConfig,
  isDigest,
  parseNormalizedReference,
  type Reference,
  sha256,
} from '../../oci/index.js';
import { type ImageId, type ImageStore, imageOs, parseImageConfig } from '../image-store.js';
import type { LayerHandle, LayerRegistrar, StagedLayerHandle } from '../ports.js';
import type { ReferenceStore } from '../reference-store.js';
import { cleanManifestPath, cleanRelative } from './safe-path.js';
import { readTar } from './tar.js';

export interface LoadDeps {
  images: ImageStore;
  refs: ReferenceStore;
  layers: LayerRegistrar;
  /** Directory for temporary files (e.g. `<data-root>/tmp`); unused by the one-pass loader, kept for callers. */
  tmpRoot: string;
}

export interface LoadResult {
  /** Lines as `docker load` prints them. */
  messages: string[];
  images: { id: ImageId; tags: string[] }[];
}

interface ManifestItem {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
  Parent?: string;
}

interface Planned {
  raw: Buffer;
  config: ImageConfig;
  /** Archive paths (resolved) of the layers, bottom first. */
  layerFiles: string[];
  /** Blob digest the layer file must have (its name says so), if any. */
  layerDigests: (Digest | undefined)[];
  tags: Reference[];
  parent?: string;
}

/** Size limit for JSON files read into memory (configs, manifests). */
const MAX_JSON = 64 << 20;

/** Digest a manifest path names: `blobs/<alg>/<hex>` or `<hex>.json` (config). */
function digestFromPath(parts: string[]): Digest | undefined {
  if (parts.length === 3 && parts[0] === 'blobs') {
    const d = `${parts[1]}:${parts[2]}`;
    return isDigest(d) ? d : undefined;
  }
  if (parts.length === 1 && /^[a-f0-9]{64}\.json$/.test(parts[0]!)) return `sha256:${parts[0]!.slice(0, 64)}` as Digest;
  return undefined;
}

/** At most this much of the archive is held in memory (all non-layer files together). */
const MAX_BUFFERED = 256 << 20;

/** A file of the archive: kept in memory (small, not a tar), or staged as a layer. */
type ArchiveNode =
  | { kind: 'dir' }
  | { kind: 'symlink'; target: string }
  | { kind: 'buffer'; data: Buffer; digest: Digest }
  | { kind: 'layer'; staged: Promise<StagedLayerHandle>; digest: Promise<Digest>; consumed: boolean }
  | { kind: 'skipped'; size: number; digest: Digest };

/** The archive as read, addressed by clean relative path; symlinks resolve inside it (like FollowSymlinkInScope). */
class ArchiveIndex {
  readonly nodes = new Map<string, ArchiveNode>();
  buffered = 0;

  add(parts: string[], node: ArchiveNode, name: string): void {
    const key = parts.join('/');
    if (this.nodes.has(key) && node.kind !== 'dir')
      throw invalidArgument(`duplicate tar entry ${JSON.stringify(name)}`);
    for (let i = 1; i < parts.length; i++) {
      const parent = this.nodes.get(parts.slice(0, i).join('/'));
      if (parent && parent.kind !== 'dir') {
        throw invalidArgument(`invalid tar entry ${JSON.stringify(name)}: a parent is not a directory`);
      }
    }
    this.nodes.set(key, node);
  }

  /** Resolves `parts`, following symlinks but never leaving the archive root. */
  resolve(parts: string[]): string {
    let todo = [...parts];
    let done: string[] = [];
    for (let hops = 0; todo.length > 0; ) {
      const p = todo.shift()!;
      if (p === '..') {
        done.pop();
        continue;
      }
      const n = this.nodes.get([...done, p].join('/'));
      if (n?.kind !== 'symlink') {
        done.push(p);
        continue;
      }
      if (++hops > 255) throw invalidArgument(`too many symlinks resolving ${JSON.stringify(parts.join('/'))}`);
      if (n.target.startsWith('/')) done = [];
      todo = [...n.target.split('/').filter((x) => x !== '' && x !== '.'), ...todo];
    }
    return done.join('/');
  }

  get(parts: string[]): ArchiveNode | undefined {
    return this.nodes.get(this.resolve(parts));
  }

  json(parts: string[], what: string): Buffer {
    const n = this.get(parts);
    if (!n) throw invalidArgument(`invalid docker save tar: ${what} is missing`);
    if (n.kind === 'skipped') throw invalidArgument(`invalid docker save tar: ${what} is too large`);
    if (n.kind !== 'buffer') throw invalidArgument(`invalid docker save tar: ${what} is not a JSON file`);
    return n.data;
  }

  /** Every staged layer, to discard what was not committed. */
  staged(): Promise<StagedLayerHandle>[] {
    const out: Promise<StagedLayerHandle>[] = [];
    for (const n of this.nodes.values()) if (n.kind === 'layer' && !n.consumed) out.push(n.staged);
    return out;
  }
}

/** Reads the archive once: layers are staged as their bytes pass, other files kept in memory. */
async function readArchive(src: Readable, layers: LayerRegistrar, index: ArchiveIndex): Promise<void> {
  await readTar(src, async (h, body) => {
    const parts = cleanRelative(h.name, 'tar entry');
    if (parts.length === 0) return;
    switch (h.type) {
      case 'dir':
        index.add(parts, { kind: 'dir' }, h.name);
        return;
      case 'symlink':
        index.add(parts, { kind: 'symlink', target: h.linkname }, h.name);
        return;
      case 'hardlink': {
        // a hard link is another name for an earlier file: alias it
        const target = cleanRelative(h.linkname, 'tar link');
        const n = index.get(target);
        if (!n || n.kind === 'dir' || n.kind === 'symlink') {
          throw invalidArgument(`invalid hard link ${JSON.stringify(h.name)}`);
        }
        index.add(parts, { kind: 'symlink', target: `/${index.resolve(target)}` }, h.name);
        return;
      }
      case 'file':
        break;
      default:
        return; // devices, fifos: nothing a save tar needs
    }
    const hash = createHash('sha256');
    let head: Buffer[] = [];
    let headLen = 0;
    let pass: PassThrough | undefined;
    let buffer: Buffer[] | undefined;
    let node: ArchiveNode | undefined;
    let settleDigest: ((e?: unknown) => void) | undefined;
    // Decides what the file is from its first 512 bytes (or all of it, if shorter).
    const decide = () => {
      const first = Buffer.concat(head);
      const kind = detectCompression(first);
      if (kind !== 'none' || looksLikeTar(first)) {
        pass = new PassThrough({ highWaterMark: 1 << 20 });
        const dec = kind === 'none' ? undefined : decompressor(kind, `layer ${h.name}`);
        let tar: Readable = pass;
        if (dec) {
          const out = new PassThrough({ highWaterMark: 1 << 20 });
          pipeline(pass, dec, out).catch((e) => out.destroy(e));
          tar = out;
        }
        let resolveDigest!: (d: Digest) => void;
        let rejectDigest!: (e: unknown) => void;
        const digest = new Promise<Digest>((res, rej) => {
          resolveDigest = res;
          rejectDigest = rej;
        });
        const staged = layers.stage(tar);
        staged.catch(() => {}); // observed when the manifest refers to it (or at cleanup)
        digest.catch(() => {});
        node = { kind: 'layer', staged, digest, consumed: false };
        settleDigest = (e) => (e ? rejectDigest(e) : resolveDigest(`sha256:${hash.digest('hex')}` as Digest));
        pass.write(first);
      } else if (h.size <= MAX_JSON && index.buffered + h.size <= MAX_BUFFERED) {
        buffer = [first];
        index.buffered += h.size;
      }
      head = [];
      headLen = 0;
    };
    try {
      await body(async (b) => {
        hash.update(b);
        if (pass) {
          if (!pass.write(b)) await once(pass, 'drain');
          return;
        }
        if (buffer) {
          buffer.push(b);
          return;
        }
        if (node) return; // skipped: hashing only
        head.push(b);
        headLen += b.length;
        if (headLen >= 512) {
          decide();
          if (!pass && !buffer) node = { kind: 'skipped', size: h.size, digest: '' as Digest };
        }
      });
      if (!pass && !buffer && !node) decide();
      if (pass) {
        pass.end();
        settleDigest?.();
      }
    } catch (e) {
      if (pass) {
        pass.destroy(e as Error);
        settleDigest?.(e);
      }
      throw e;
    }
    if (buffer) {
      const data = Buffer.concat(buffer);
      node = { kind: 'buffer', data, digest: sha256(data) };
    } else if (!pass) {
      node = { kind: 'skipped', size: h.size, digest: `sha256:${hash.digest('hex')}` as Digest };
    }
    index.add(parts, node!, h.name);
  });
}

/** Builds manifest items from an OCI layout's index.json (25+ or skopeo/buildkit output without manifest.json). */
function manifestFromIndex(index: ArchiveIndex): ManifestItem[] | undefined {
  if (!index.get(['index.json'])) return undefined;
  const idx = JSON.parse(index.json(['index.json'], 'index.json').toString()) as {
    manifests?: { digest: string; annotations?: Record<string, string> }[];
  };
  const items: ManifestItem[] = [];
  for (const d of idx.manifests ?? []) {
    if (!isDigest(d.digest)) throw invalidArgument(`invalid digest ${JSON.stringify(d.digest)} in index.json`);
    const [alg, hex] = d.digest.split(':') as [string, string];
    const mRaw = index.json(['blobs', alg, hex], `blob ${d.digest}`);
    if (sha256(mRaw) !== d.digest) throw invalidArgument(`digest mismatch for blob ${d.digest}`);
    const m = JSON.parse(mRaw.toString()) as { config?: { digest: string }; layers?: { digest: string }[] };
    if (!m.config || !Array.isArray(m.layers)) {
      throw invalidArgument(`unsupported manifest ${d.digest} in index.json (image indexes are not supported)`);
    }
    const blob = (x: string) => {
      if (!isDigest(x)) throw invalidArgument(`invalid digest ${JSON.stringify(x)} in manifest ${d.digest}`);
      return `blobs/${x.replace(':', '/')}`;
    };
    const name = d.annotations?.['io.containerd.image.name'];
    items.push({
      Config: blob(m.config.digest),
      RepoTags: name ? [familiarString(parseNormalizedReference(name))] : null,
      Layers: m.layers.map((l) => blob(l.digest)),
    });
  }
  return items;
}

function plan(index: ArchiveIndex): Planned[] {
  let manifest: unknown;
  if (index.get(['manifest.json'])) {
    try {
      manifest = JSON.parse(index.json(['manifest.json'], 'manifest.json').toString('utf8'));
    } catch (e) {
      if (isKind(e, 'invalid-argument')) throw e;
      throw invalidArgument(`invalid manifest.json: ${(e as Error).message}`, e);
    }
  } else {
    manifest = manifestFromIndex(index);
    if (manifest === undefined) {
      throw invalidArgument(
        'invalid docker save tar: no manifest.json or index.json (legacy v1 format is not supported)',
      );
    }
  }
  if (manifest === null) throw invalidArgument('invalid manifest, manifest cannot be null (but can be [])');
  if (!Array.isArray(manifest)) throw invalidArgument('invalid manifest.json: not an array');
  const out: Planned[] = [];
  for (const m of manifest as ManifestItem[]) {
    if (typeof m !== 'object' || m === null || typeof m.Config !== 'string' || !Array.isArray(m.Layers)) {
      throw invalidArgument('invalid manifest.json: entry needs Config and Layers');
    }
    const cParts = cleanManifestPath(m.Config);
    const raw = index.json(cParts, `config ${m.Config}`);
    const want = digestFromPath(cParts);
    if (want && sha256(raw) !== want) {
      throw invalidArgument(`invalid config ${m.Config}: digest mismatch (content is ${sha256(raw)})`);
    }
    const config = parseImageConfig(raw);
    if (imageOs(config) !== 'linux') throw invalidArgument(`cannot load ${imageOs(config)} image on linux`);
    if (m.Layers.length !== config.rootfs.diff_ids.length) {
      throw invalidArgument(
        `invalid manifest, layers length mismatch: expected ${m.Layers.length}, got ${config.rootfs.diff_ids.length}`,
      );
    }
    const layerFiles: string[] = [];
    const layerDigests: (Digest | undefined)[] = [];
    for (const l of m.Layers) {
      if (typeof l !== 'string') throw invalidArgument('invalid manifest.json: layer path is not a string');
      const parts = cleanManifestPath(l);
      const n = index.get(parts);
      if (!n || n.kind === 'dir' || n.kind === 'symlink') {
        throw invalidArgument(`invalid docker save tar: layer ${l} is missing`);
      }
      if (n.kind === 'skipped') throw invalidArgument(`invalid docker save tar: layer ${l} is not a tar archive`);
      layerFiles.push(index.resolve(parts));
      layerDigests.push(parts[0] === 'blobs' ? digestFromPath(parts) : undefined);
    }
    const tags: Reference[] = [];
    for (const t of m.RepoTags ?? []) {
      const ref = parseNormalizedReference(String(t));
      if (!ref.tag || ref.digest) throw invalidArgument(`invalid tag ${JSON.stringify(t)}`);
      tags.push(ref);
    }
    out.push({ raw, config, layerFiles, layerDigests, tags, ...(m.Parent ? { parent: m.Parent } : {}) });
  }
  return out;
}

/** Verifies that every blob named by its digest (blobs/sha256/<hex>) has that content. */
async function verifyBlobDigests(index: ArchiveIndex): Promise<void> {
  for (const [key, n] of index.nodes) {
    const want = digestFromPath(key.split('/'));
    if (!want || !key.startsWith('blobs/')) continue;
    const got =
      n.kind === 'layer' ? await n.digest : n.kind === 'buffer' || n.kind === 'skipped' ? n.digest : undefined;
    if (got !== undefined && got !== want) throw invalidArgument(`invalid layer ${want}: content digest mismatch`);
  }
}

/** Loads a `docker save` tar stream into the stores. */
export async function loadImages(input: Readable, deps: LoadDeps): Promise<LoadResult> {
  const index = new ArchiveIndex();
  const held: Digest[] = [];
  try {
    await readArchive(input, deps.layers, index);
    const items = plan(index);
    await verifyBlobDigests(index);
    // attach the staged layers in order (reusing what the store has)
    for (const it of items) {
      const chain = chainIds(it.config.rootfs.diff_ids);
      for (let i = 0; i < chain.length; i++) {
        const c = chain[i]!;
        const parent = i > 0 ? chain[i - 1] : undefined;
        const expected = it.config.rootfs.diff_ids[i]!;
        if (deps.layers.has(c)) {
          deps.layers.get(c);
          held.push(c);
          continue;
        }
        const n = index.nodes.get(it.layerFiles[i]!)!;
        let layer: LayerHandle;
        if (n.kind === 'layer' && !n.consumed) {
          const staged = await n.staged;
          if (staged.diffId !== expected) {
            throw invalidArgument(`invalid diffID for layer ${i}: expected "${expected}", got "${staged.diffId}"`);
          }
          n.consumed = true;
          layer = await deps.layers.commitStaged(staged, parent);
        } else if (n.kind === 'buffer') {
          layer = await deps.layers.register(readableOf(n.data), parent);
        } else {
          // the same file under another parent (rare): rebuild its tar from the layer made of it
          const prev = deps.layers.list().find((l) => l.diffId === expected);
          if (!prev) throw invalidArgument(`invalid docker save tar: layer ${it.layerFiles[i]} cannot be reused`);
          layer = await deps.layers.register(prev.tarStream(), parent);
        }
        held.push(layer.chainId);
        if (layer.diffId !== expected) {
          throw invalidArgument(`invalid diffID for layer ${i}: expected "${expected}", got "${layer.diffId}"`);
        }
        if (layer.chainId !== c) throw invalidArgument(`layer ${i} registered as ${layer.chainId}, expected ${c}`);
      }
    }
    // create images and tags
    const result: LoadResult = { messages: [], images: [] };
    const created: { id: ImageId; parent?: string }[] = [];
    for (const it of items) {
      const id = deps.images.create(it.raw);
      const tags: string[] = [];
      for (const ref of it.tags) {
        let prev: Digest | undefined;
        try {
          prev = deps.refs.get(ref);
        } catch {
          prev = undefined;
        }
        if (prev && prev !== id) {
          result.messages.push(
            `The image ${familiarString(ref)} already exists, renaming the old one with ID ${prev} to empty string`,
          );
        }
        deps.refs.addTag(ref, id, true);
        result.messages.push(`Loaded image: ${familiarString(ref)}`);
        tags.push(familiarString(ref));
      }
      if (tags.length === 0) result.messages.push(`Loaded image ID: ${id}`);
      result.images.push({ id, tags });
      created.push({ id, ...(it.parent ? { parent: it.parent } : {}) });
    }
    for (const c of created) {
      if (c.parent && c.parent !== c.id && created.some((o) => o.id === c.parent)) {
        deps.images.setParent(c.id, c.parent as ImageId);
      }
    }
    return result;
  } finally {
    // staged layers nobody committed (duplicates, unreferenced, or after an error)
    for (const p of index.staged()) {
      const st = await p.catch(() => undefined);
      await st?.discard().catch(() => {});
    }
    for (const c of held.reverse()) await deps.layers.release(c).catch(() => {});
  }
}

function readableOf(data: Buffer): Readable {
  const p = new PassThrough();
  p.end(data);
  return p;
}
