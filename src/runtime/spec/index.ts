export * from './builder.js';
export * from './seccomp.js';
export type * from './types.js';
export * from './user.js';
