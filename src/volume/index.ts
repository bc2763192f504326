export * from './local.js';
export * from './mounts.js';
export * from './service.js';
