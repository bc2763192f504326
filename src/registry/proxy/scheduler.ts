// The pull-through cache's TTL expiry scheduler. State is persisted in the
// storage root at `/scheduler-state.json` in distribution's format (a JSON map
// of `name@digest` → {Key, ExpiryData (RFC 3339), EntryType: 0 blob, 1
// manifest}), saved at most every 5 s when it changed and on stop, so a
// restarted berth (or distribution) resumes the same expiries.
import { isPathNotFound, type StorageDriver } from '../storage/driver.js';

export const SCHEDULER_STATE = '/scheduler-state.json';
export const ENTRY_BLOB = 0;
export const ENTRY_MANIFEST = 1;
const SAVE_EVERY_MS = 5000;
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Entry {
  Key: string;
  ExpiryData: string;
  EntryType: number;
  timer?: NodeJS.Timeout;
}

export type ExpiryFn = (name: string, digest: string) => Promise<void>;

export class TtlScheduler {
  private readonly entries = new Map<string, Entry>();
  private dirty = false;
  private saveTimer: NodeJS.Timeout | undefined;
  private started = false;
  onBlobExpire: ExpiryFn = async () => {};
  onManifestExpire: ExpiryFn = async () => {};
  onError: (e: unknown, key: string) => void = () => {};

  constructor(private readonly driver: StorageDriver) {}

  async start(): Promise<void> {
    try {
      const raw = JSON.parse((await this.driver.getContent(SCHEDULER_STATE)).toString('utf8')) as Record<string, Entry>;
      for (const [k, e] of Object.entries(raw ?? {})) {
        if (typeof e?.ExpiryData === 'string' && (e.EntryType === ENTRY_BLOB || e.EntryType === ENTRY_MANIFEST))
          this.entries.set(k, { Key: k, ExpiryData: e.ExpiryData, EntryType: e.EntryType });
      }
    } catch (e) {
      if (!isPathNotFound(e) && !(e instanceof SyntaxError)) throw e;
    }
    this.started = true;
    for (const e of this.entries.values()) this.arm(e);
    this.saveTimer = setInterval(() => {
      if (this.dirty) void this.save().catch((err) => this.onError(err, SCHEDULER_STATE));
    }, SAVE_EVERY_MS);
    this.saveTimer.unref();
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    if (this.saveTimer) clearInterval(this.saveTimer);
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    await this.save();
  }

  /** Schedules (or pushes back) the expiry of `name@digest`. */
  add(name: string, digest: string, ttlMs: number, type: number): void {
    const key = `${name}@${digest}`;
    const old = this.entries.get(key);
    if (old?.timer) clearTimeout(old.timer);
    const e: Entry = { Key: key, ExpiryData: new Date(Date.now() + ttlMs).toISOString(), EntryType: type };
    this.entries.set(key, e);
    this.dirty = true;
    if (this.started) this.arm(e);
  }

  get size(): number {
    return this.entries.size;
  }

  has(name: string, digest: string): boolean {
    return this.entries.has(`${name}@${digest}`);
  }

  private arm(e: Entry): void {
    const due = new Date(e.ExpiryData).getTime() - Date.now();
    e.timer = setTimeout(
      () => {
        if (new Date(e.ExpiryData).getTime() > Date.now()) return this.arm(e); // a long TTL, re-armed
        void this.fire(e);
      },
      Math.max(0, Math.min(due, MAX_TIMER_MS)),
    );
    e.timer.unref();
  }

  private async fire(e: Entry): Promise<void> {
    if (this.entries.get(e.Key) !== e) return;
    const at = e.Key.lastIndexOf('@');
    const [name, digest] = [e.Key.slice(0, at), e.Key.slice(at + 1)];
    try {
      await (e.EntryType === ENTRY_BLOB ? this.onBlobExpire : this.onManifestExpire)(name, digest);
    } catch (err) {
      this.onError(err, e.Key);
    }
    if (this.entries.get(e.Key) === e) {
      this.entries.delete(e.Key);
      this.dirty = true;
    }
  }

  async save(): Promise<void> {
    const out: Record<string, Omit<Entry, 'timer'>> = {};
    for (const [k, e] of this.entries) out[k] = { Key: e.Key, ExpiryData: e.ExpiryData, EntryType: e.EntryType };
    this.dirty = false;
    await this.driver.putContent(SCHEDULER_STATE, JSON.stringify(out));
  }
}
