// What the container, exec and commit routes need (moby router/container/backend.go).
// src/daemon's ContainerService, ContainerIO, ContainerViews and ContainerFs
// provide it; berthd composes them.
import type { Duplex, Readable } from 'node:stream';
import type { Filters } from '../../filters.js';

export interface AttachRequest {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  stream: boolean;
  logs: boolean;
  detachKeys?: string;
  /** false: raw output even without a TTY (websocket attach). Default true. */
  multiplex?: boolean;
}

export interface LogsRequest {
  stdout: boolean;
  stderr: boolean;
  follow: boolean;
  since?: bigint;
  until?: bigint;
  tail?: number;
  timestamps: boolean;
  details: boolean;
}

export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

export interface ContainerBackend {
  create(req: {
    name?: string;
    config: Record<string, unknown>;
    hostConfig?: Record<string, unknown> | null;
    networkingConfig?: Record<string, unknown> | null;
    platform?: string;
  }): Promise<{ Id: string; Warnings: string[] }>;
  start(ref: string): Promise<void>;
  stop(ref: string, t?: number): Promise<void>;
  kill(ref: string, signal: string): Promise<void>;
  restart(ref: string, t?: number): Promise<void>;
  pause(ref: string): Promise<void>;
  unpause(ref: string): Promise<void>;
  wait(ref: string, condition: string, signal: AbortSignal): Promise<unknown>;
  remove(ref: string, opts: { force?: boolean; volumes?: boolean }): Promise<void>;
  rename(ref: string, name: string): Promise<void>;
  update(ref: string, hostConfig: Record<string, unknown>): Promise<unknown>;
  prune(filters: Filters): Promise<unknown>;
  list(o: { all: boolean; limit: number; size: boolean; filters: Filters }): Promise<unknown[]>;
  inspect(ref: string, size: boolean): Promise<unknown>;
  top(ref: string, psArgs: string): Promise<unknown>;
  stats(
    ref: string,
    o: { stream: boolean; oneShot: boolean },
    write: (d: unknown) => void,
    signal: AbortSignal,
  ): Promise<void>;
  resize(ref: string, h: number, w: number): Promise<void>;
  /** Validates the attach before hijacking; returns whether the container has a TTY. */
  attachCheck(ref: string): { tty: boolean };
  attach(ref: string, o: AttachRequest, sock: Duplex): Promise<void>;
  logs(ref: string, o: LogsRequest, signal: AbortSignal): { tty: boolean; chunks: AsyncIterable<Buffer> };
  statPath(ref: string, path: string): Promise<PathStat>;
  archive(ref: string, path: string): Promise<{ stat: PathStat; tar: Readable }>;
  extract(
    ref: string,
    path: string,
    body: Readable,
    o: { noOverwriteDirNonDir: boolean; copyUIDGID: boolean },
  ): Promise<void>;
  changes(ref: string): Promise<unknown[]>;
  export(ref: string): Promise<Readable>;
  commit(o: {
    container: string;
    repo?: string;
    tag?: string;
    comment?: string;
    author?: string;
    changes?: string[];
    pause?: boolean;
    config?: Record<string, unknown> | null;
  }): Promise<{ Id: string }>;
  execCreate(ref: string, config: Record<string, unknown>): string;
  execCheck(id: string): { tty: boolean };
  execStart(id: string, o: { tty?: boolean; consoleSize?: [number, number] | null }, sock?: Duplex): Promise<void>;
  execResize(id: string, h: number, w: number): void;
  execInspect(id: string): unknown;
}
