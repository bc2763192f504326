// The `filters` query parameter (moby api/types/filters): JSON of either
// map[string]map[string]bool (current) or map[string][]string (legacy).
import { invalidArgument } from '../errors/index.js';

export class Filters {
  private readonly fields = new Map<string, Set<string>>();

  static parse(raw: string | null | undefined): Filters {
    const f = new Filters();
    if (!raw) return f;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw invalidArgument((e as Error).message);
    }
    if (v === null) return f;
    if (typeof v !== 'object' || Array.isArray(v)) {
      throw invalidArgument('invalid filter: expected a JSON object');
    }
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
      const set = new Set<string>();
      if (Array.isArray(val)) {
        for (const s of val) {
          if (typeof s !== 'string') throw invalidArgument(`invalid filter '${k}': values must be strings`);
          set.add(s);
        }
      } else if (val && typeof val === 'object') {
        for (const [s, b] of Object.entries(val as Record<string, unknown>)) {
          if (typeof b !== 'boolean') throw invalidArgument(`invalid filter '${k}': values must be booleans`);
          if (b) set.add(s);
        }
      } else if (val !== null) {
        throw invalidArgument(`invalid filter '${k}'`);
      }
      f.fields.set(k, set);
    }
    return f;
  }

  /** Refuses keys not in `accepted` with dockerd's wording. */
  validate(accepted: Iterable<string>): this {
    const ok = new Set(accepted);
    for (const k of this.fields.keys()) if (!ok.has(k)) throw invalidArgument(`Invalid filter '${k}'`);
    return this;
  }

  contains(key: string): boolean {
    return this.fields.has(key);
  }
  get(key: string): string[] {
    return [...(this.fields.get(key) ?? [])];
  }
  keys(): string[] {
    return [...this.fields.keys()];
  }
  get size(): number {
    return this.fields.size;
  }

  /** moby ExactMatch: true when the key is absent or `value` is one of its values. */
  exactMatch(key: string, value: string): boolean {
    const s = this.fields.get(key);
    return !s || s.size === 0 || s.has(value);
  }

  /** moby MatchKVList: every `k` / `k=v` of `key` holds in `labels`. */
  matchKVList(key: string, labels: Record<string, string> | null | undefined): boolean {
    const s = this.fields.get(key);
    if (!s || s.size === 0) return true;
    if (!labels) return false;
    for (const want of s) {
      const i = want.indexOf('=');
      if (i < 0) {
        if (!(want in labels)) return false;
      } else if (labels[want.slice(0, i)] !== want.slice(i + 1)) return false;
    }
    return true;
  }

  /** The single boolean value of a key ("true"/"1"/"false"/"0"); error names it as dockerd does. */
  boolOf(key: string): boolean | undefined {
    const s = this.fields.get(key);
    if (!s || s.size === 0) return undefined;
    let out: boolean | undefined;
    for (const v of s) {
      const l = v.toLowerCase();
      if (l === 'true' || l === '1') out = true;
      else if (l === 'false' || l === '0') out = out ?? false;
      else throw invalidArgument(`Invalid filter '${key}=${v}'`);
    }
    return out;
  }
}
