// The reference store: `<root>/image/<driver>/repositories.json`, written the
// way moby's refstore does (daemon/internal/refstore/store.go):
//   {"Repositories":{"<familiar name>":{"<familiar name>:<tag>":"sha256:…",
//                                       "<familiar name>@sha256:…":"sha256:…"}}}
// Keys are sorted (Go marshals maps in key order), no whitespace, mode 0600,
// replaced atomically on every change. A reference with both tag and digest
// is stored by digest only.
import fs from 'node:fs';
import { alreadyExists, errnoCode, invalidArgument, notFound } from '../errors/index.js';
import { atomicWriteFileSync } from '../fsutil/index.js';
import {
  type Digest,
  familiarName,
  familiarString,
  goJsonString,
  isDigest,
  parseNormalizedReference,
  type Reference,
  withDefaultTag,
} from '../oci/index.js';
import { msg } from './messages.js';

export interface Association {
  ref: Reference;
  id: Digest;
}

/** Drops the tag when a reference also has a digest (moby favorDigest). */
function favorDigest(r: Reference): Reference {
  return r.digest && r.tag ? { domain: r.domain, path: r.path, digest: r.digest } : r;
}

/** Go's map key order: byte-wise on the UTF-8 encoding. */
function goKeyOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

const byRefString = (a: Reference, b: Reference) => goKeyOrder(refKey(a), refKey(b));
function refKey(r: Reference): string {
  return `${r.domain}/${r.path}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

export class ReferenceStore {
  /** familiar name → familiar string → image ID */
  private readonly repositories = new Map<string, Map<string, Digest>>();
  /** image ID → familiar string → reference */
  private readonly byId = new Map<Digest, Map<string, Reference>>();

  private constructor(readonly jsonPath: string) {}

  /** Loads `jsonPath`, creating it (`{"Repositories":{}}`) when missing. */
  static open(jsonPath: string): ReferenceStore {
    const s = new ReferenceStore(jsonPath);
    let text: string | undefined;
    try {
      text = fs.readFileSync(jsonPath, 'utf8');
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
    if (text === undefined) s.save();
    else s.load(text);
    return s;
  }

  private load(text: string): void {
    const doc = JSON.parse(text) as { Repositories?: Record<string, Record<string, string> | null> };
    for (const [name, repo] of Object.entries(doc.Repositories ?? {})) {
      const m = new Map<string, Digest>();
      this.repositories.set(name, m);
      for (const [refStr, id] of Object.entries(repo ?? {})) {
        if (!isDigest(id)) continue;
        m.set(refStr, id);
        let ref: Reference;
        try {
          ref = parseNormalizedReference(refStr);
        } catch {
          continue; // moby skips what it cannot parse, keeping it on disk
        }
        this.index(id, refStr, ref);
      }
    }
  }

  private index(id: Digest, refStr: string, ref: Reference): void {
    let m = this.byId.get(id);
    if (!m) {
      m = new Map();
      this.byId.set(id, m);
    }
    m.set(refStr, ref);
  }

  private unindex(id: Digest, refStr: string): void {
    const m = this.byId.get(id);
    if (!m) return;
    m.delete(refStr);
    if (m.size === 0) this.byId.delete(id);
  }

  /** The exact bytes moby would write for the current state. */
  serialize(): string {
    const names = [...this.repositories.keys()].sort(goKeyOrder);
    const repos = names.map((n) => {
      const repo = this.repositories.get(n)!;
      const keys = [...repo.keys()].sort(goKeyOrder);
      return `${goJsonString(n)}:{${keys.map((k) => `${goJsonString(k)}:${goJsonString(repo.get(k)!)}`).join(',')}}`;
    });
    return `{"Repositories":{${repos.join(',')}}}`;
  }

  private save(): void {
    atomicWriteFileSync(this.jsonPath, this.serialize(), { mode: 0o600 });
  }

  /** Adds `name[:tag]` (default tag latest). A digest reference is refused. */
  addTag(ref: Reference, id: Digest, force = false): void {
    if (ref.digest) throw invalidArgument(msg.tagWithDigest);
    this.add(withDefaultTag(ref), id, force);
  }

  /** Adds `name@digest`; an existing digest reference is never overwritten. */
  addDigest(ref: Reference, id: Digest, force = false): void {
    if (!ref.digest) throw invalidArgument('reference has no digest');
    this.add(ref, id, force);
  }

  private add(ref0: Reference, id: Digest, force: boolean): void {
    const ref = favorDigest(ref0);
    const name = familiarName(ref);
    const refStr = familiarString(ref);
    if (name === 'sha256') throw invalidArgument(msg.ambiguousTagName);
    let repo = this.repositories.get(name);
    const old = repo?.get(refStr);
    if (old !== undefined) {
      if (ref.digest) throw alreadyExists(msg.cannotOverwriteDigest(ref.digest));
      if (!force) throw alreadyExists(msg.tagConflict(refStr, old));
      this.unindex(old, refStr);
    }
    if (!repo) {
      repo = new Map();
      this.repositories.set(name, repo);
    }
    repo.set(refStr, id);
    this.index(id, refStr, ref);
    this.save();
  }

  /** Removes a reference (tag defaults to latest). Throws not-found when absent. */
  delete(ref0: Reference): boolean {
    const ref = withDefaultTag(favorDigest(ref0));
    const name = familiarName(ref);
    const refStr = familiarString(ref);
    const repo = this.repositories.get(name);
    const id = repo?.get(refStr);
    if (!repo || id === undefined) throw notFound(msg.refDoesNotExist);
    repo.delete(refStr);
    if (repo.size === 0) this.repositories.delete(name);
    this.unindex(id, refStr);
    this.save();
    return true;
  }

  /** The image a reference points at (digest wins over tag; tag defaults to latest). */
  get(ref0: Reference): Digest {
    const ref = ref0.digest ? favorDigest(ref0) : withDefaultTag(ref0);
    const id = this.repositories.get(familiarName(ref))?.get(familiarString(ref));
    if (id === undefined) throw notFound(msg.refDoesNotExist);
    return id;
  }

  /** Every reference to `id`, sorted by full reference string. */
  references(id: Digest): Reference[] {
    return [...(this.byId.get(id)?.values() ?? [])].sort(byRefString);
  }

  /** Every reference in the repository of `ref`, sorted. */
  referencesByName(ref: Reference): Association[] {
    const repo = this.repositories.get(familiarName(ref));
    if (!repo) return [];
    const out: Association[] = [];
    for (const [refStr, id] of repo) {
      try {
        out.push({ ref: parseNormalizedReference(refStr), id });
      } catch {
        // unparsable entries stay on disk but are not returned
      }
    }
    return out.sort((a, b) => byRefString(a.ref, b.ref));
  }

  /** Every association in the store. */
  all(): Association[] {
    const out: Association[] = [];
    for (const [id, m] of this.byId) for (const ref of m.values()) out.push({ ref, id });
    return out;
  }
}
