export * from './atomic.js';
export * from './root-lock.js';
