// Layer archives: streaming tar, tar-split, layer extraction, diff export.
export { type ApplyOptions, type ApplyResult, applyLayer, directorySize, NoOverwriteError } from './apply.js';
export { applyLayerOffThread, type OffThreadOptions, prewarmApplyWorkers } from './apply-threaded.js';
export { assembleTar } from './assemble.js';
export {
  type CompressionKind,
  decompressor,
  decompressStream,
  detectCompression,
  looksLikeTar,
} from './compression.js';
export { type Change, changes, exportDiff } from './export.js';
export { cleanPath, parseHeaderBlock, type TarHeader, TarParser, type TarSink } from './tar.js';
export { encodeEntry, readTarSplit, type TarSplitEntry, TarSplitWriter } from './tarsplit.js';
export { encodeHeader, paxRecord, setChecksum, type TarEntrySpec, type TarFormatChoice, TarWriter } from './testkit.js';
