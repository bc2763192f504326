// Image metadata (imagedb, repositories.json, distribution metadata), image
// operations and docker save/load, laid out exactly as moby's /var/lib/docker.
import path from 'node:path';

export * from './distribution-metadata.js';
export * from './image-service.js';
export * from './image-store.js';
export { msg as imageMessages, shortId } from './messages.js';
export * from './ports.js';
export * from './reference-store.js';
export { type LoadDeps, type LoadResult, loadImages } from './tarexport/load.js';
export { type SaveDeps, saveImages, selectImages } from './tarexport/save.js';

/** Where the image metadata of a data-root lives for a graph driver (moby: image/<driver>). */
export function imagePaths(dataRoot: string, driver = 'overlay2') {
  const base = path.join(dataRoot, 'image', driver);
  return {
    base,
    imagedb: path.join(base, 'imagedb'),
    repositories: path.join(base, 'repositories.json'),
    distribution: path.join(base, 'distribution'),
    layerdb: path.join(base, 'layerdb'),
    tmp: path.join(dataRoot, 'tmp'),
  };
}
