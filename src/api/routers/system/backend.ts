// What the system router needs (moby router/system/backend.go). The daemon's
// SystemService and EventsService satisfy it structurally.

export interface EventLike {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: string;
  time: number;
  timeNano: number;
}

export interface SystemBackend {
  info(): Record<string, unknown>;
  version(): Record<string, unknown>;
  diskUsage(types?: string[]): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** Buffered events plus a live subscription. */
  subscribe(onEvent: (e: EventLike) => void): { past: EventLike[]; cancel: () => void };
  experimental(): boolean;
  /** The wire form of an event (default JSON.stringify). */
  encodeEvent?(e: EventLike): string;
}

/** POST /auth (docker login); provided by the distribution module when it exists. */
export interface AuthBackend {
  auth(config: Record<string, unknown>): Promise<{ Status: string; IdentityToken?: string }>;
}
