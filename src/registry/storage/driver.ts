// The storage driver interface (distribution's StorageDriver, trimmed): opaque
// '/'-separated paths, no knowledge of the registry layout. The filesystem
// driver is the default; an object-store driver implements the same contract
// (and must pass test/registry/driver-conformance).
import type { Readable } from 'node:stream';

export interface FileInfo {
  path: string;
  size: number;
  modTime: Date;
  isDir: boolean;
}

/** A streaming writer; its content is only guaranteed readable after commit(). */
export interface FileWriter {
  /** Bytes in the file, including what was there before an append. */
  readonly size: number;
  write(chunk: Buffer): Promise<void>;
  /** Optional: writes several chunks in order with one call (the filesystem driver's writev). */
  writev?(chunks: Buffer[]): Promise<void>;
  /** Makes the content readable (and durable unless `sync: false`) and closes the writer. */
  commit(opts?: { sync?: boolean }): Promise<void>;
  /** Closes without committing (an append stays resumable on the filesystem driver). */
  close(): Promise<void>;
  /** Discards the file. */
  cancel(): Promise<void>;
}

export type WalkResult = undefined | 'skip-dir' | 'stop';

/** What identifies one version of a file: a rewrite changes at least one field (see LinkCache). */
export interface FileVersion {
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

/**
 * Optional driver capability for caches of small files (link files, blob
 * existence) that must still see writes by OTHER processes sharing the root.
 * The filesystem driver implements it with one stat; a driver without it is
 * never cached (the in-memory driver, object stores).
 */
export interface VersionedFiles {
  /** A handle for a driver path (validated and resolved once; cache it). */
  locate(path: string): string;
  /** Synchronous and cheap: the file's current version, or null when it is missing or not a file. */
  versionSync(handle: string): FileVersion | null;
  /** Reads a small file with the version its content belongs to; undefined when missing. */
  readVersioned(handle: string): Promise<{ data: Buffer; version: FileVersion } | undefined>;
}

export interface StorageDriver {
  readonly name: string;
  getContent(path: string): Promise<Buffer>;
  /**
   * Atomic: readers see the old content or the new, never a mix. `sync: false`
   * skips the fsyncs (for link files: losing one in a crash loses a name, never
   * corrupts content; distribution never fsyncs).
   */
  putContent(path: string, content: Buffer | string, opts?: { sync?: boolean }): Promise<void>;
  /** Reads from `offset`; `length` limits the bytes (undefined = to the end). */
  reader(path: string, offset?: number, length?: number): Promise<Readable>;
  writer(path: string, append: boolean): Promise<FileWriter>;
  stat(path: string): Promise<FileInfo>;
  /** Full paths of the direct children of a directory, sorted. */
  list(path: string): Promise<string[]>;
  /** Moves (replacing the destination, atomically where the backend can). */
  move(source: string, dest: string): Promise<void>;
  /** Removes a file or a whole subtree. */
  delete(path: string): Promise<void>;
  /** Depth-first, lexical order; the callback may skip a directory or stop. */
  walk(path: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult): Promise<void>;
  /**
   * Optional fast path for large reads: writes `length` bytes from `offset` to `out`
   * with backpressure (the filesystem driver reads into reused buffers). Rejects
   * PathNotFoundError before writing anything when the file is missing.
   */
  copyTo?(path: string, offset: number, length: number, out: NodeJS.WritableStream): Promise<void>;
  /** See VersionedFiles; absent on drivers that cannot answer cheaply. */
  readonly versioned?: VersionedFiles;
}

export class PathNotFoundError extends Error {
  constructor(readonly path: string) {
    super(`path not found: ${path}`);
    this.name = 'PathNotFoundError';
  }
}

export class InvalidPathError extends Error {
  constructor(readonly path: string) {
    super(`invalid path: ${JSON.stringify(path)}`);
    this.name = 'InvalidPathError';
  }
}

export class InvalidOffsetError extends Error {
  constructor(
    readonly path: string,
    readonly offset: number,
  ) {
    super(`invalid offset ${offset} for ${path}`);
    this.name = 'InvalidOffsetError';
  }
}

export const isPathNotFound = (e: unknown): e is PathNotFoundError => e instanceof PathNotFoundError;

const PATH = /^(\/[A-Za-z0-9._:-]+)+$/;

/** Every driver checks paths the same way: absolute, no empty, `.` or `..` components. */
export function checkDriverPath(p: string): string {
  if (p !== '/' && (!PATH.test(p) || p.split('/').some((c) => c === '.' || c === '..'))) throw new InvalidPathError(p);
  return p;
}
