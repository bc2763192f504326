export * from './chain-id.js';
export * from './digest.js';
export * from './go-json.js';
export * from './media-types.js';
export * from './reference.js';
export * from './types.js';
