// Progress as dockerd reports it (pkg/progress → JSON messages). The Engine
// API adapts a ProgressSink to its JSON-message writer; ids are the short
// (12 hex) layer digests for pulls and diff IDs for pushes, "" for status lines.
import { type Digest, digestHex } from '../oci/index.js';

export interface ProgressDetail {
  current?: number;
  total?: number;
}

export interface ProgressSink {
  update(id: string, status: string, detail?: ProgressDetail): void;
  /** The `aux` message push ends with ({Tag, Digest, Size}); optional. */
  aux?(data: Record<string, unknown>): void;
}

export const nullProgress: ProgressSink = { update() {} };

/** Collects messages (tests, the CLI-less callers). */
export class RecordingProgress implements ProgressSink {
  readonly messages: Array<{ id: string; status: string; detail?: ProgressDetail }> = [];
  readonly auxes: Array<Record<string, unknown>> = [];
  update(id: string, status: string, detail?: ProgressDetail): void {
    this.messages.push(detail ? { id, status, detail } : { id, status });
  }
  aux(data: Record<string, unknown>): void {
    this.auxes.push(data);
  }
  statuses(id: string): string[] {
    return this.messages.filter((m) => m.id === id).map((m) => m.status);
  }
}

/** Sends every message to several sinks (watchers of a shared download). */
export class FanoutProgress implements ProgressSink {
  readonly sinks = new Set<ProgressSink>();
  update(id: string, status: string, detail?: ProgressDetail): void {
    for (const s of this.sinks) s.update(id, status, detail);
  }
}

export const shortDigest = (d: Digest) => digestHex(d).slice(0, 12);

/** Rate-limits progress updates for one id (dockerd sends at most every 100 ms). */
export function throttled(sink: ProgressSink, id: string, status: string, intervalMs = 100) {
  let last = 0;
  return (current: number, total: number | undefined, force = false) => {
    const now = Date.now();
    if (!force && now - last < intervalMs) return;
    last = now;
    sink.update(id, status, total !== undefined && total >= 0 ? { current, total } : { current });
  };
}

/** Adapts src/progress's JSON-message sink (status(status, id?, detail?) / aux) to this module's ProgressSink. */
export function fromJsonMessageSink(s: {
  status(status: string, id?: string, detail?: ProgressDetail): void;
  aux(value: unknown): void;
}): ProgressSink {
  return {
    update: (id, status, detail) => s.status(status, id === '' ? undefined : id, detail),
    aux: (data) => s.aux(data),
  };
}
