// The write gate: lets the server run garbage collection while it keeps
// accepting pushes. Every write that makes content reachable (an upload's
// commit, a cross-repository mount, a manifest PUT) runs as a *writer* and
// records the digests it made reachable while a collection is marking. The
// collector's sweep runs *exclusively*: it waits for in-flight writers, adds
// every recorded digest (and what those manifests reference) to its mark set,
// deletes, then lets writers continue. Readers never wait.
import type { Digest } from '../../oci/index.js';

export class WriteGate {
  private writers = 0;
  private exclusive = false;
  private readonly waitingWriters: Array<() => void> = [];
  private waitingExclusive: Array<() => void> = [];
  /** Digests made reachable since the current collection began marking (undefined when none runs). */
  private touched: Set<Digest> | undefined;

  /** Runs `fn` as a writer; `digests` are recorded for a running collection. */
  async write<T>(digests: () => Digest[], fn: () => Promise<T>): Promise<T> {
    while (this.exclusive) await new Promise<void>((r) => this.waitingWriters.push(r));
    this.writers++;
    try {
      const r = await fn();
      if (this.touched) for (const d of digests()) this.touched.add(d);
      return r;
    } finally {
      this.writers--;
      if (this.writers === 0) for (const w of this.waitingExclusive.splice(0)) w();
    }
  }

  /** Starts recording (a collection begins marking). */
  beginMark(): void {
    this.touched = new Set();
  }

  get marking(): boolean {
    return this.touched !== undefined;
  }

  /** Waits for writers to finish, blocks new ones, and runs `fn` with what was recorded. */
  async exclusively<T>(fn: (touched: ReadonlySet<Digest>) => Promise<T>): Promise<T> {
    while (this.exclusive) await new Promise<void>((r) => this.waitingWriters.push(r));
    this.exclusive = true;
    try {
      while (this.writers > 0) await new Promise<void>((r) => this.waitingExclusive.push(r));
      return await fn(this.touched ?? new Set());
    } finally {
      this.touched = undefined;
      this.exclusive = false;
      for (const w of this.waitingWriters.splice(0)) w();
    }
  }

  /** Stops recording without a sweep (a collection that failed while marking). */
  abort(): void {
    this.touched = undefined;
  }
}
