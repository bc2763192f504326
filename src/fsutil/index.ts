export * from './atomic.js';
export * from './dev.js';
export * from './root-lock.js';
