// Size of a directory tree the way moby computes layer sizes
// (daemon/internal/directory: sum of lstat sizes of non-directories, each
// inode counted once so hard links are not double-counted).
import fsp from 'node:fs/promises';
import path from 'node:path';

export async function directorySize(root: string): Promise<number> {
  const seen = new Set<bigint>();
  let size = 0;
  const walk = async (dir: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        await walk(p);
        continue;
      }
      let st: import('node:fs').BigIntStats;
      try {
        st = await fsp.lstat(p, { bigint: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      if (st.size === 0n || seen.has(st.ino)) continue;
      seen.add(st.ino);
      size += Number(st.size);
    }
  };
  await walk(root);
  return size;
}
