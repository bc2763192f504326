// The daemon's event log (moby daemon/events): a bounded buffer of recent
// events plus live subscribers, for GET /events.
import { EventEmitter } from 'node:events';

export interface EventActor {
  ID: string;
  Attributes: Record<string, string>;
}

/** API 1.41 events.Message, with the deprecated status/id/from fields images and containers carry. */
export interface EventMessage {
  status?: string;
  id?: string;
  from?: string;
  Type: string;
  Action: string;
  Actor: EventActor;
  scope: 'local' | 'swarm';
  time: number;
  timeNano: number;
}

const EXACT_NANO = Symbol('timeNano');
const wallBase = BigInt(Date.now()) * 1_000_000n;
const hrBase = process.hrtime.bigint();
let lastNs = 0n;

/** Wall-clock nanoseconds, strictly increasing within this process. */
function nowNanos(): bigint {
  let ns = wallBase + (process.hrtime.bigint() - hrBase);
  if (ns <= lastNs) ns = lastNs + 1n;
  lastNs = ns;
  return ns;
}

/** The event as dockerd writes it, with timeNano exact (an int64, beyond JS number precision). */
export function encodeEvent(m: object): string {
  const exact = (m as Record<symbol, bigint>)[EXACT_NANO];
  const text = JSON.stringify(m);
  return exact === undefined ? text : text.replace(/"timeNano":[0-9.e+]+/, `"timeNano":${exact}`);
}

/** moby keeps the last 256 events for `since`. */
export const EVENTS_BUFFER = 256;

export class EventsService {
  private readonly buf: EventMessage[] = [];
  private readonly bus = new EventEmitter();

  constructor() {
    this.bus.setMaxListeners(0);
  }

  log(type: string, action: string, actor: EventActor): EventMessage {
    const nowNs = nowNanos();
    const m: EventMessage = {
      Type: type,
      Action: action,
      Actor: actor,
      scope: 'local',
      time: Number(nowNs / 1_000_000_000n),
      timeNano: Number(nowNs),
    };
    // timeNano exceeds 2^53: keep the exact value for the wire (see encodeEvent)
    Object.defineProperty(m, EXACT_NANO, { value: nowNs, enumerable: false });
    if (type === 'image' || type === 'container') {
      const withLegacy: EventMessage = { status: action, id: actor.ID, ...m };
      Object.defineProperty(withLegacy, EXACT_NANO, { value: nowNs, enumerable: false });
      if (type === 'container' && actor.Attributes.image) withLegacy.from = actor.Attributes.image;
      return this.push(withLegacy);
    }
    return this.push(m);
  }

  private push(m: EventMessage): EventMessage {
    this.buf.push(m);
    if (this.buf.length > EVENTS_BUFFER) this.buf.shift();
    this.bus.emit('event', m);
    return m;
  }

  /** Buffered events (oldest first) and a live subscription; call the returned function to stop. */
  subscribe(onEvent: (m: EventMessage) => void): { past: EventMessage[]; cancel: () => void } {
    this.bus.on('event', onEvent);
    return { past: [...this.buf], cancel: () => this.bus.off('event', onEvent) };
  }

  get listeners(): number {
    return this.bus.listenerCount('event');
  }
}
