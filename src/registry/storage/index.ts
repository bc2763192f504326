// The registry's storage: one object wiring the stores over one driver.
import { BlobStore } from './blobs.js';
import type { StorageDriver } from './driver.js';
import { WriteGate } from './gate.js';
import { ManifestStore } from './manifests.js';
import { UploadStore } from './uploads.js';

export class RegistryStorage {
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  readonly manifests: ManifestStore;
  readonly gate = new WriteGate();
  constructor(readonly driver: StorageDriver) {
    this.blobs = new BlobStore(driver);
    this.uploads = new UploadStore(driver, this.blobs, this.gate);
    this.manifests = new ManifestStore(driver, this.blobs, this.gate);
  }
}

export * from './blobs.js';
export * from './catalog.js';
export * from './driver.js';
export * from './filesystem.js';
export * from './gate.js';
export * from './inmemory.js';
export * from './manifests.js';
export * from './paths.js';
export * from './uploads.js';
