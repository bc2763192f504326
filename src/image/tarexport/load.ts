// `docker load`: reads a `docker save` tar (20.10: manifest.json + <v1id>/layer.tar;
// 25+: OCI layout with manifest.json pointing into blobs/sha256; an OCI layout
// without manifest.json is read through index.json). The outer tar is spooled
// to a private directory under `<tmpRoot>` (never held in memory), everything is
// validated, then layers are registered in order through the layer store, the
// images are created from the raw config bytes and RepoTags are tagged. On any
// error every layer reference taken is released and nothing is tagged.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
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
import type { LayerRegistrar } from '../ports.js';
import type { ReferenceStore } from '../reference-store.js';
import { assertNoSymlinkParents, cleanManifestPath, cleanRelative, resolveInScope } from './safe-path.js';
import { readTar } from './tar.js';

export interface LoadDeps {
  images: ImageStore;
  refs: ReferenceStore;
  layers: LayerRegistrar;
  /** Directory for the spooled tar (e.g. `<data-root>/tmp`). */
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

async function extract(src: Readable, dir: string): Promise<void> {
  await readTar(src, async (h, body) => {
    const parts = cleanRelative(h.name, 'tar entry');
    if (parts.length === 0) return;
    assertNoSymlinkParents(dir, parts);
    const target = path.join(dir, ...parts);
    if (parts.length > 1) await fsp.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
    switch (h.type) {
      case 'dir':
        await fsp.mkdir(target, { recursive: true, mode: 0o755 });
        return;
      case 'file': {
        const fh = await fsp.open(target, 'wx', 0o644).catch((e: NodeJS.ErrnoException) => {
          throw e.code === 'EEXIST' ? invalidArgument(`duplicate tar entry ${JSON.stringify(h.name)}`) : e;
        });
        try {
          await body((b) => fh.write(b).then(() => {}));
        } finally {
          await fh.close();
        }
        return;
      }
      case 'symlink':
        await fsp.symlink(h.linkname, target);
        return;
      case 'hardlink': {
        const from = resolveInScope(dir, cleanRelative(h.linkname, 'tar link'));
        const st = await fsp.lstat(from).catch(() => undefined);
        if (!st?.isFile()) throw invalidArgument(`invalid hard link ${JSON.stringify(h.name)}`);
        await fsp.link(from, target);
        return;
      }
      default:
        return; // devices, fifos: nothing a save tar needs
    }
  });
}

async function readJsonFile(file: string, what: string): Promise<Buffer> {
  let st: fs.Stats;
  try {
    st = await fsp.stat(file);
  } catch {
    throw invalidArgument(`invalid docker save tar: ${what} is missing`);
  }
  if (!st.isFile()) throw invalidArgument(`invalid docker save tar: ${what} is not a file`);
  if (st.size > MAX_JSON) throw invalidArgument(`invalid docker save tar: ${what} is too large`);
  return fsp.readFile(file);
}

/** Builds manifest items from an OCI layout's index.json (25+ or skopeo/buildkit output without manifest.json). */
async function manifestFromIndex(dir: string): Promise<ManifestItem[] | undefined> {
  const indexFile = resolveInScope(dir, ['index.json']);
  if (!fs.existsSync(indexFile)) return undefined;
  const index = JSON.parse((await readJsonFile(indexFile, 'index.json')).toString()) as {
    manifests?: { digest: string; annotations?: Record<string, string> }[];
  };
  const items: ManifestItem[] = [];
  for (const d of index.manifests ?? []) {
    if (!isDigest(d.digest)) throw invalidArgument(`invalid digest ${JSON.stringify(d.digest)} in index.json`);
    const [alg, hex] = d.digest.split(':') as [string, string];
    const mRaw = await readJsonFile(resolveInScope(dir, ['blobs', alg, hex]), `blob ${d.digest}`);
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

async function plan(dir: string): Promise<Planned[]> {
  let manifest: unknown;
  const mFile = resolveInScope(dir, ['manifest.json']);
  if (fs.existsSync(mFile)) {
    try {
      manifest = JSON.parse((await readJsonFile(mFile, 'manifest.json')).toString('utf8'));
    } catch (e) {
      if (isKind(e, 'invalid-argument')) throw e;
      throw invalidArgument(`invalid manifest.json: ${(e as Error).message}`, e);
    }
  } else {
    manifest = await manifestFromIndex(dir);
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
    const raw = await readJsonFile(resolveInScope(dir, cParts), `config ${m.Config}`);
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
      const f = resolveInScope(dir, parts);
      const st = await fsp.stat(f).catch(() => undefined);
      if (!st?.isFile()) throw invalidArgument(`invalid docker save tar: layer ${l} is missing`);
      layerFiles.push(f);
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

const MAGIC = {
  gzip: Buffer.from([0x1f, 0x8b, 0x08]),
  zstd: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
  bzip2: Buffer.from('BZh'),
  xz: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
};

/** Detects the compression of a file by its magic number. */
export async function detectCompression(file: string): Promise<'none' | 'gzip' | 'zstd' | 'bzip2' | 'xz'> {
  const fh = await fsp.open(file, 'r');
  try {
    const b = Buffer.alloc(6);
    const { bytesRead } = await fh.read(b, 0, 6, 0);
    const head = b.subarray(0, bytesRead);
    for (const [k, m] of Object.entries(MAGIC)) if (head.subarray(0, m.length).equals(m)) return k as 'gzip';
    return 'none';
  } finally {
    await fh.close();
  }
}

/** Opens a layer file as an uncompressed tar stream, hashing the raw bytes into `rawHash`. */
async function openLayer(file: string, rawHash: ReturnType<typeof createHash>): Promise<Readable> {
  const kind = await detectCompression(file);
  const src = fs.createReadStream(file);
  const tap = new PassThrough();
  src.on('data', (c) => rawHash.update(c as Buffer));
  src.on('error', (e) => tap.destroy(e));
  let decomp: NodeJS.ReadWriteStream | undefined;
  if (kind === 'gzip') decomp = zlib.createGunzip();
  else if (kind === 'zstd') {
    const z = (zlib as unknown as { createZstdDecompress?: () => NodeJS.ReadWriteStream }).createZstdDecompress;
    if (!z) throw invalidArgument(`layer ${path.basename(file)} is zstd-compressed: not supported by this Node.js`);
    decomp = z();
  } else if (kind !== 'none') throw invalidArgument(`layer ${path.basename(file)}: unsupported compression ${kind}`);
  if (!decomp) {
    src.pipe(tap);
    return tap;
  }
  pipeline(src, decomp, tap).catch((e) => tap.destroy(e));
  return tap;
}

async function fileDigest(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file)) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** Loads a `docker save` tar stream into the stores. */
export async function loadImages(input: Readable, deps: LoadDeps): Promise<LoadResult> {
  await fsp.mkdir(deps.tmpRoot, { recursive: true, mode: 0o700 });
  const dir = await fsp.mkdtemp(path.join(deps.tmpRoot, 'docker-import-'));
  const held: Digest[] = [];
  try {
    await extract(input, dir);
    const items = await plan(dir);
    // register layers (in order, reusing what the store has)
    for (const it of items) {
      const chain = chainIds(it.config.rootfs.diff_ids);
      for (let i = 0; i < chain.length; i++) {
        const c = chain[i]!;
        const expected = it.config.rootfs.diff_ids[i]!;
        if (deps.layers.has(c)) {
          // already present: still refuse a blob whose content does not match its name
          const blob = it.layerDigests[i];
          if (blob && (await fileDigest(it.layerFiles[i]!)) !== blob) {
            throw invalidArgument(`invalid layer ${blob}: content digest mismatch`);
          }
          deps.layers.get(c);
          held.push(c);
          continue;
        }
        const rawHash = createHash('sha256');
        const tar = await openLayer(it.layerFiles[i]!, rawHash);
        const layer = await deps.layers.register(tar, i > 0 ? chain[i - 1] : undefined);
        held.push(layer.chainId);
        const blob = it.layerDigests[i];
        if (blob && `sha256:${rawHash.digest('hex')}` !== blob) {
          throw invalidArgument(`invalid layer ${blob}: content digest mismatch`);
        }
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
    for (const c of held.reverse()) await deps.layers.release(c).catch(() => {});
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
