// Mark-and-sweep garbage collection of a registry root (distribution's
// `registry garbage-collect`), with berth's rules:
//
// Mark, per repository. The roots are every manifest revision, or with
// `removeUntagged` only the manifests a tag's `current/link` names. From a
// root: the manifest's own blob, its config and layers, and, for an index,
// every child (recursively, whether or not the child is tagged: an untagged
// child of a tagged index is never removed — distribution#3178/#4939's class
// of bug). Referrers (manifests with a `subject`) follow their subject: with
// `removeUntagged`, an untagged referrer is kept exactly when its subject is
// kept in that repository, and removed when its subject is not (deleted or
// itself collected). Without `removeUntagged` no manifest is removed at all.
//
// Sweep: untagged, unkept manifests (their revision link and their entries in
// every tag's index), blobs no repository marked, and `_layers` links to
// digests the repository does not reference (as distribution 3 does).
//
// Online: when `gate` is given (the server runs the collection itself), the
// mark phase runs concurrently with pushes; the sweep runs with the gate held
// exclusively and first marks everything the gate recorded as made reachable
// during the mark (and what those manifests reference). See docs/registry.md.
import type { Digest } from '../oci/index.js';
import { isPathNotFound, type StorageDriver } from './storage/driver.js';
import type { WriteGate } from './storage/gate.js';
import { listRepositories, RegistryStorage } from './storage/index.js';
import { parseManifest } from './storage/manifests.js';
import { BLOBS, digestFromComponents, pathFor } from './storage/paths.js';

export interface GcOptions {
  dryRun?: boolean;
  removeUntagged?: boolean;
  /** Receives distribution-style progress lines (no trailing newline). */
  emit?: (line: string) => void;
  /** Set when the serving process collects: pushes continue during the mark. */
  gate?: WriteGate;
  /** Content modified within this many ms of the start is never removed (berth; default 0). */
  graceMs?: number;
}

export interface GcResult {
  marked: number;
  blobsDeleted: Digest[];
  manifestsDeleted: Array<{ name: string; digest: Digest }>;
  layerLinksDeleted: Array<{ name: string; digest: Digest }>;
  dryRun: boolean;
}

async function listSafe(driver: StorageDriver, p: string): Promise<string[]> {
  try {
    return await driver.list(p);
  } catch (e) {
    if (isPathNotFound(e)) return [];
    throw e;
  }
}

const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);

/** Digests of the `<alg>/<hex>` entries under a links directory (`_layers`, `revisions`). */
async function linkDigests(driver: StorageDriver, root: string): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const a of await listSafe(driver, root)) {
    for (const h of await listSafe(driver, a)) {
      const d = digestFromComponents(base(a), base(h));
      if (d) out.push(d);
    }
  }
  return out;
}

export async function garbageCollect(driver: StorageDriver, opts: GcOptions = {}): Promise<GcResult> {
  const emit = opts.emit ?? (() => {});
  const dryRun = opts.dryRun ?? false;
  const storage = new RegistryStorage(driver);
  const started = Date.now();
  const graceCutoff = started - (opts.graceMs ?? 0);
  const markSet = new Set<Digest>();
  const manifestInfo = new Map<Digest, ReturnType<typeof parseManifest> | null>();

  const infoOf = async (d: Digest) => {
    if (manifestInfo.has(d)) return manifestInfo.get(d) ?? null;
    const body = await storage.blobs.get(d);
    let info: ReturnType<typeof parseManifest> | null = null;
    if (body) {
      try {
        info = parseManifest(body, '', d);
      } catch {
        info = null;
      }
    }
    manifestInfo.set(d, info);
    return info;
  };

  /** Marks a manifest and everything it references; `revs` limits which children are manifests of the repo. */
  const markManifest = async (
    repo: string | undefined,
    d: Digest,
    kept: Set<Digest> | undefined,
    revs: Set<Digest> | undefined,
  ): Promise<void> => {
    if (kept?.has(d)) return;
    kept?.add(d);
    if (!markSet.has(d)) {
      markSet.add(d);
      if (repo) emit(`${repo}: marking manifest ${d} `);
    }
    const info = await infoOf(d);
    if (!info) return;
    for (const b of info.blobs) {
      if (!markSet.has(b.digest)) {
        markSet.add(b.digest);
        if (repo) emit(`${repo}: marking blob ${b.digest}`);
      }
    }
    for (const c of info.children) {
      if (!revs || revs.has(c.digest)) await markManifest(repo, c.digest, kept, revs);
      else markSet.add(c.digest);
    }
  };

  const gate = opts.gate;
  gate?.beginMark();
  const toDelete: Array<{ name: string; digest: Digest; tags: string[] }> = [];
  const layerCandidates: Array<{ name: string; digest: Digest }> = [];
  try {
    for (const repo of await listRepositories(driver)) {
      emit(repo);
      const revs = new Set(await storage.manifests.revisions(repo));
      const tags = (await storage.manifests.tags(repo)) ?? [];
      const kept = new Set<Digest>();
      const roots: Digest[] = [];
      if (opts.removeUntagged) {
        for (const t of tags) {
          const d = await storage.manifests.resolveTag(repo, t);
          if (d && revs.has(d)) roots.push(d);
        }
      } else roots.push(...revs);
      for (const d of roots) await markManifest(repo, d, kept, revs);
      if (opts.removeUntagged) {
        // Referrers follow their subject, to a fixpoint (a signature of an SBOM of an image).
        for (let changed = true; changed; ) {
          changed = false;
          for (const d of revs) {
            if (kept.has(d)) continue;
            const info = await infoOf(d);
            if (info?.subject && kept.has(info.subject)) {
              await markManifest(repo, d, kept, revs);
              changed = true;
            }
          }
        }
        for (const d of revs) {
          if (kept.has(d)) continue;
          if (
            graceCutoff < started &&
            (await youngerThan(driver, pathFor({ kind: 'revisionLink', name: repo, digest: d }), graceCutoff))
          ) {
            await markManifest(repo, d, kept, revs);
            continue;
          }
          toDelete.push({ name: repo, digest: d, tags });
        }
      }
      for (const d of await linkDigests(driver, pathFor({ kind: 'layersRoot', name: repo }))) {
        layerCandidates.push({ name: repo, digest: d });
      }
    }
  } catch (e) {
    gate?.abort();
    throw e;
  }

  const sweep = async (touched: ReadonlySet<Digest>): Promise<GcResult> => {
    for (const d of touched) await markManifest(undefined, d, undefined, undefined);
    const manifests = toDelete.filter((m) => !markSet.has(m.digest));
    // Blobs: everything under blobs/ that nothing marked.
    const blobs: Digest[] = [];
    for (const alg of await listSafe(driver, BLOBS)) {
      for (const pre of await listSafe(driver, alg)) {
        for (const h of await listSafe(driver, pre)) {
          const d = digestFromComponents(base(alg), base(h));
          if (!d || markSet.has(d)) continue;
          if (
            graceCutoff < started &&
            (await youngerThan(driver, pathFor({ kind: 'blobData', digest: d }), graceCutoff))
          )
            continue;
          blobs.push(d);
        }
      }
    }
    const layerLinks = layerCandidates.filter((l) => !markSet.has(l.digest));
    const liveLayerLinks: typeof layerLinks = [];
    for (const l of layerLinks) {
      if (graceCutoff < started && (await youngerThan(driver, pathFor({ kind: 'layerLink', ...l }), graceCutoff)))
        continue;
      liveLayerLinks.push(l);
    }
    for (const m of manifests) emit(`manifest eligible for deletion: ${m.name}@${m.digest}`);
    emit('');
    emit(`${markSet.size} blobs marked, ${blobs.length} blobs and ${manifests.length} manifests eligible for deletion`);
    if (!dryRun) {
      for (const m of manifests) {
        for (const t of m.tags) {
          await deleteQuiet(
            driver,
            pathFor({ kind: 'tagIndexLink', name: m.name, tag: t, digest: m.digest }).slice(0, -'/link'.length),
          );
        }
        await deleteQuiet(driver, pathFor({ kind: 'revisionDir', name: m.name, digest: m.digest }));
      }
    }
    for (const d of blobs) {
      emit(`blob eligible for deletion: ${d}`);
      if (!dryRun) await deleteQuiet(driver, pathFor({ kind: 'blobDir', digest: d }));
    }
    for (const l of liveLayerLinks) {
      emit(`${l.name}: layer link eligible for deletion: ${l.digest}`);
      if (!dryRun) await deleteQuiet(driver, pathFor({ kind: 'layerLink', ...l }).slice(0, -'/link'.length));
    }
    return {
      marked: markSet.size,
      blobsDeleted: blobs,
      manifestsDeleted: manifests.map(({ name, digest }) => ({ name, digest })),
      layerLinksDeleted: liveLayerLinks,
      dryRun,
    };
  };
  return gate ? gate.exclusively(sweep) : sweep(new Set());
}

async function youngerThan(driver: StorageDriver, p: string, cutoff: number): Promise<boolean> {
  try {
    return (await driver.stat(p)).modTime.getTime() > cutoff;
  } catch (e) {
    if (isPathNotFound(e)) return false;
    throw e;
  }
}

async function deleteQuiet(driver: StorageDriver, p: string): Promise<void> {
  try {
    await driver.delete(p);
  } catch (e) {
    if (!isPathNotFound(e)) throw e;
  }
}
