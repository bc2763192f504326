// What the image router needs (moby router/image/backend.go). The daemon's
// ImagesService satisfies ImageBackend structurally; pull/push/search come
// from the distribution module when it is wired in.
import type { Readable, Writable } from 'node:stream';
import type { ProgressSink } from '../../../progress/index.js';
import type { Filters } from '../../filters.js';

export interface ImportRequest {
  src: string;
  repo?: string;
  tag?: string;
  message?: string;
  changes?: string[];
  platform?: { os: string; architecture?: string; variant?: string };
}

export interface ImageBackend {
  list(opts: { all?: boolean; filters?: Filters; withExtraAttrs?: boolean }): unknown[];
  inspect(name: string): Promise<unknown>;
  history(name: string): unknown[];
  tag(name: string, repo: string, tag: string): string;
  delete(name: string, opts: { force?: boolean; prune?: boolean }): Promise<unknown[]>;
  prune(filters?: Filters): Promise<unknown>;
  load(body: Readable, sink: ProgressSink): Promise<void>;
  /** Throws (not-found …) before any byte of the save tar is written. */
  checkSave(names: string[]): void;
  save(names: string[], out: Writable): Promise<void>;
  import(body: Readable, req: ImportRequest, sink: ProgressSink): Promise<string>;
}

export interface PullRequest {
  image: string;
  tag: string;
  platform?: { os: string; architecture?: string; variant?: string };
  /** X-Registry-Auth, decoded */
  auth?: Record<string, unknown>;
  signal: AbortSignal;
}

export interface DistributionBackend {
  pull(req: PullRequest, sink: ProgressSink): Promise<void>;
  push(
    req: { name: string; tag: string; auth?: Record<string, unknown>; signal: AbortSignal },
    sink: ProgressSink,
  ): Promise<void>;
  distributionInspect?(name: string, auth?: Record<string, unknown>): Promise<unknown>;
}
