#!/usr/bin/env node
// Entry point of the `berth` command. It is CommonJS on purpose: the CJS loader
// reads this file synchronously, so libuv's thread pool has not started yet and
// UV_THREADPOOL_SIZE can still be raised for the registry, which serves many
// small file operations at once (the ESM loader would already have started the
// pool with its default of 4 threads by the time any ESM code runs).
if (process.argv[2] === 'registry') process.env.UV_THREADPOOL_SIZE ??= '16';
import('../dist/src/cmd/berth.js');
