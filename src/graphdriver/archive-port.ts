// The part of src/archive the driver and the layer store use, loaded lazily
// so that the driver's metadata operations work without it.
import type { Readable } from 'node:stream';
import type { ApplyDiffResult, Change } from './driver.js';

export interface ArchiveApi {
  applyLayer(
    tar: Readable,
    dest: string,
    opts: { tarSplitPath?: string; whiteouts: 'overlay' | 'none'; signal?: AbortSignal },
  ): Promise<ApplyDiffResult>;
  assembleTar(tarSplitPath: string, diffDir: string): Readable;
  exportDiff(upperDir: string, opts: { whiteouts: 'overlay' | 'none' }): Readable;
  changes(upperDir: string, lowerDirs: string[]): Promise<Change[]>;
}

// Specifiers kept out of TypeScript's module resolution while src/archive is being written.
const INDEX = '../archive/index.js';
const PARTS = ['../archive/apply.js', '../archive/assemble.js', '../archive/diff.js', '../archive/changes.js'];

let api: Promise<ArchiveApi> | undefined;

async function load(): Promise<ArchiveApi> {
  try {
    return (await import(INDEX as string)) as ArchiveApi;
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw e;
  }
  // Until src/archive has its index: collect what exists.
  const merged: Record<string, unknown> = {};
  for (const p of PARTS) {
    try {
      Object.assign(merged, await import(p as string));
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    }
  }
  return merged as unknown as ArchiveApi;
}

export function archive(): Promise<ArchiveApi> {
  api ??= load();
  return api;
}
