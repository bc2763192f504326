// The narrow view of the layer store that src/image needs (moby's
// LayerGetReleaser plus register for load). src/layer's LayerStore satisfies
// it structurally; src/image never imports src/layer.
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/index.js';

/** A read-only layer as the image code sees it. */
export interface LayerHandle {
  readonly chainId: Digest;
  readonly diffId: Digest;
  readonly parent?: Digest;
  /** Size in bytes of this layer alone (layerdb `size`). */
  readonly size: number;
  /** The layer's uncompressed tar; its sha256 is the diff ID. */
  tarStream(): Readable;
}

/** What release() deleted (layers whose last reference went). */
export interface ReleasedLayer {
  readonly chainId: Digest;
}

/** Get takes a reference that release(chainId) gives back. */
export interface LayerGetReleaser {
  get(chainId: Digest): LayerHandle;
  release(chainId: Digest): Promise<readonly ReleasedLayer[] | undefined>;
  has(chainId: Digest): boolean;
  /** Every layer in the store (no references taken). */
  list(): LayerHandle[];
}

/** What `docker load` needs in addition: registering a layer tar on a parent chain. */
export interface LayerRegistrar extends LayerGetReleaser {
  /** Applies `tar` (uncompressed) on `parent`; takes a reference on the result. */
  register(tar: Readable, parent?: Digest): Promise<LayerHandle>;
  /** Extracts a layer before its parent is known (load and pull extract while the chain is still unknown). */
  stage(
    tar: Readable,
    opts?: { signal?: AbortSignal; offThread?: boolean; compression?: 'gzip' | 'zstd' | 'none' },
  ): Promise<StagedLayerHandle>;
  /** Attaches a staged layer on `parent` and takes a reference; consumes it (a duplicate is discarded). */
  commitStaged(staged: StagedLayerHandle, parent?: Digest): Promise<LayerHandle>;
}

/** A layer extracted by stage(), not yet in any chain. */
export interface StagedLayerHandle {
  readonly diffId: Digest;
  discard(): Promise<void>;
}

/** Containers using images, for `docker rmi` conflict checks (daemon provides it). */
export interface ContainerUsage {
  /** The first container (full ID) whose image is `imageId`, filtered by running state when given. */
  firstUsing(imageId: Digest, state?: 'running' | 'stopped'): string | undefined;
}

export const noContainers: ContainerUsage = { firstUsing: () => undefined };
