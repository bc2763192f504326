export * from './layer-store.js';
export { descriptorJson, LayerDb, type LayerRecord, type MountRecord, TAR_SPLIT_FILE } from './layerdb.js';
