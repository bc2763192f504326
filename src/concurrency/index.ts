// In-process concurrency helpers. berthd is the only writer of its data-root,
// so every lock lives in memory; every read-modify-write that spans an await
// runs under a KeyedMutex for the key it touches.

/** Serialises async work per key (moby/locker). */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev.catch(() => {});
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** Limits how many tasks run at once; the limit can change at runtime (reload). */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];
  constructor(private max: number) {}

  get limit(): number {
    return this.max;
  }

  /** Would a new task have to wait? */
  get busy(): boolean {
    return this.active >= this.max;
  }

  setLimit(n: number): void {
    this.max = Math.max(1, n);
    this.drain();
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiters.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.drain();
    }
  }

  private drain(): void {
    while (this.active < this.max && this.waiters.length) {
      this.active++;
      this.waiters.shift()!();
    }
  }
}

/** Deduplicates concurrent calls for the same key (the first caller's promise is shared). */
export class Singleflight<T> {
  private readonly inflight = new Map<string, Promise<T>>();
  do(key: string, fn: () => Promise<T>): Promise<T> {
    const existing = this.inflight.get(key);
    if (existing) return existing;
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}
