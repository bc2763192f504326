// Repository listing (`_catalog`) and stale-upload purging: both walk
// `repositories/`. A directory is a repository when it holds `_manifests`
// (as distribution decides); `_`-prefixed directories are never descended.
import { type FileInfo, isPathNotFound, type StorageDriver } from './driver.js';
import { REPOSITORIES } from './paths.js';

export async function listRepositories(driver: StorageDriver): Promise<string[]> {
  const out: string[] = [];
  try {
    await driver.walk(REPOSITORIES, (fi) => {
      if (!fi.isDir) return undefined;
      const base = fi.path.slice(fi.path.lastIndexOf('/') + 1);
      if (!base.startsWith('_')) return undefined;
      if (base === '_manifests') out.push(fi.path.slice(REPOSITORIES.length + 1, -'/_manifests'.length));
      return 'skip-dir';
    });
  } catch (e) {
    if (!isPathNotFound(e)) throw e;
  }
  return out.sort();
}

/** Applies `n`/`last` to a sorted list; `more` says whether a next page exists. */
export function paginate(all: string[], n: number | undefined, last: string | undefined) {
  const after = last === undefined ? all : all.filter((x) => x > last);
  if (n === undefined) return { items: after, more: false };
  return { items: after.slice(0, n), more: after.length > n };
}

export interface PurgeResult {
  removed: string[];
  errors: string[];
}

/**
 * Removes uploads older than `olderThan` (by `startedat`, or by the data file's
 * mtime when `startedat` is missing or unreadable). `dryRun` only reports.
 */
export async function purgeUploads(driver: StorageDriver, olderThan: Date, dryRun: boolean): Promise<PurgeResult> {
  const res: PurgeResult = { removed: [], errors: [] };
  const uploadDirs: string[] = [];
  try {
    await driver.walk(REPOSITORIES, (fi: FileInfo) => {
      if (!fi.isDir) return undefined;
      const base = fi.path.slice(fi.path.lastIndexOf('/') + 1);
      if (base === '_uploads') {
        uploadDirs.push(fi.path);
        return 'skip-dir';
      }
      return base.startsWith('_') ? 'skip-dir' : undefined;
    });
  } catch (e) {
    if (!isPathNotFound(e)) throw e;
  }
  for (const dir of uploadDirs) {
    let ids: string[];
    try {
      ids = await driver.list(dir);
    } catch {
      continue;
    }
    for (const up of ids) {
      let started: Date | undefined;
      try {
        const s = (await driver.getContent(`${up}/startedat`)).toString('utf8').trim();
        const t = new Date(s);
        if (!Number.isNaN(t.getTime())) started = t;
      } catch {
        // fall back to mtime
      }
      if (!started) {
        try {
          started = (await driver.stat(up)).modTime;
        } catch {
          continue;
        }
      }
      if (started < olderThan) {
        if (!dryRun) {
          try {
            await driver.delete(up);
          } catch (e) {
            if (!isPathNotFound(e)) {
              res.errors.push(`${up}: ${(e as Error).message}`);
              continue;
            }
          }
        }
        res.removed.push(up);
      }
    }
  }
  return res;
}
