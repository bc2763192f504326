// The graph driver port (moby daemon/graphdriver/driver.go: ProtoDriver +
// DiffDriver), as the layer store consumes it. IDs are opaque directory names
// chosen by the caller (the layer store uses 64-hex cache IDs and
// `<mount-id>-init` for container init layers).
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/index.js';

export interface CreateOpts {
  /** `--storage-opt` values; overlay2 only knows `size` (needs xfs pquota, unsupported here). */
  storageOpt?: Record<string, string>;
  mountLabel?: string;
  /**
   * false: nothing is fsynced (a container's RW layer: a crash may lose it, and
   * the layer store sweeps what it finds incomplete at start; moby does not
   * fsync these either). Default true.
   */
  durable?: boolean;
}

/** One entry of `docker diff`: 0 = modified, 1 = added, 2 = deleted (moby archive.ChangeType). */
export interface Change {
  path: string;
  kind: 0 | 1 | 2;
}

export interface ApplyDiffOptions {
  /** Where to record the tar-split metadata (moby format, gzip). */
  tarSplitPath?: string;
  signal?: AbortSignal;
  /** Extract on a worker thread (large layers extracted concurrently use more than one core). */
  offThread?: boolean;
  /** The stream is compressed so (decompressed by the driver, on the worker when offThread). */
  compression?: 'gzip' | 'zstd' | 'none';
  /** The stream's chunks belong to nobody else once read (offThread may transfer them instead of copying). */
  transferChunks?: boolean;
}

export interface ApplyDiffResult {
  /** sha256 of the raw (uncompressed) tar stream. */
  diffId: Digest;
  /** Bytes of tar consumed. */
  tarSize: number;
  /** What moby records in layerdb `size` (directory size of the applied diff). */
  size: number;
}

export type LayeredSource = { kind: 'absent' } | { kind: 'dir'; path: string };

export interface GraphDriver {
  /** `overlay2`: also the name of the home directory and of `image/<name>/`. */
  readonly name: string;
  readonly home: string;
  /** A read-only image layer over `parent` (a driver ID). */
  create(id: string, parent?: string, opts?: CreateOpts): Promise<void>;
  /** Makes `parent` the parent of a layer created without one (for extraction before the chain is known). */
  attachParent(id: string, parent: string): Promise<void>;
  /** A writable layer (container init or container layer) over `parent`. */
  createReadWrite(id: string, parent?: string, opts?: CreateOpts): Promise<void>;
  /** Removes the layer's directories (via rename); unmounts it first if needed. No-op if absent. */
  remove(id: string): Promise<void>;
  /** Mounts the layer (refcounted) and returns its root filesystem path. */
  get(id: string, mountLabel?: string): Promise<string>;
  /** Drops one mount reference; unmounts on the last one. */
  put(id: string): Promise<void>;
  exists(id: string): boolean;
  /**
   * Whether a layer's dir holds everything it needs (after a crash that lost
   * unsynced writes); `hasParent`: it must have its lower chain. Default: exists().
   */
  isComplete?(id: string, hasParent: boolean): Promise<boolean>;
  /** Extracts `tar` into the layer's diff directory (one pass: digest, tar-split, extraction). */
  applyDiff(id: string, parent: string | undefined, tar: Readable, opts?: ApplyDiffOptions): Promise<ApplyDiffResult>;
  /** The layer's own changes as a tar stream. */
  diff(id: string, parent?: string): Readable;
  changes(id: string, parent?: string): Promise<Change[]>;
  diffSize(id: string, parent?: string): Promise<number>;
  /** The directory holding the layer's own files (files for tar-split reassembly). */
  diffPath(id: string): string;
  /**
   * Where a layer's merged view of `rel` comes from, read without mounting:
   * 'absent' (nothing there), the one directory that holds all of it (a
   * directory in a single layer, no other layer contributing), or null when
   * only a mount can tell (layers merge there, or a symlink is on the way).
   */
  soleSource?(id: string, rel: string): Promise<LayeredSource | null>;
  /** Rows of `docker info` "Storage Driver" section. */
  status(): Array<[string, string]>;
  /** Inspect's GraphDriver.Data. */
  metadata(id: string): Promise<Record<string, string>>;
  /** Every layer ID present in the driver home (for orphan detection). */
  list(): Promise<string[]>;
  /** Unmounts everything the driver mounted under its home. */
  cleanup(): Promise<void>;
}
