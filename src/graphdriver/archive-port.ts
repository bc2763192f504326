// The part of src/archive the driver and the layer store use (one place, so
// the dependency is easy to see: graphdriver → archive, layer → archive).
export { applyLayer, applyLayerOffThread, assembleTar, changes, decompressor, exportDiff } from '../archive/index.js';
