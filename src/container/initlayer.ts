// What moby's daemon/initlayer writes into a container's `-init` layer:
// directories /dev/pts /dev/shm /proc /sys, empty files /.dockerenv
// /etc/resolv.conf /etc/hosts /etc/hostname /dev/console (mode 0755), and
// /etc/mtab → /proc/mounts; each path's components are unlinked first (so an
// image symlink there cannot redirect the write), and existing entries stay.
import fs from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors/index.js';

export const INIT_LAYER_ENTRIES: ReadonlyArray<[string, 'dir' | 'file' | string]> = [
  ['/dev/pts', 'dir'],
  ['/dev/shm', 'dir'],
  ['/proc', 'dir'],
  ['/sys', 'dir'],
  ['/.dockerenv', 'file'],
  ['/etc/resolv.conf', 'file'],
  ['/etc/hosts', 'file'],
  ['/etc/hostname', 'file'],
  ['/dev/console', 'file'],
  ['/etc/mtab', '/proc/mounts'],
];

/**
 * What setupInitLayer(root, uid, gid) writes depends only on the layers below
 * and on uid/gid, which the key names (the layer store replays it per image).
 */
export function initLayerKey(uid = 0, gid = 0): string {
  return `moby-initlayer-v1:${uid}:${gid}`;
}

export async function setupInitLayer(root: string, uid = 0, gid = 0): Promise<void> {
  for (const [p, typ] of INIT_LAYER_ENTRIES) {
    let prev = '/';
    for (const part of p.split('/').slice(1)) {
      prev = path.join(prev, part);
      try {
        fs.unlinkSync(path.join(root, prev));
      } catch {
        // moby ignores unlink errors (directories, missing entries)
      }
    }
    const target = path.join(root, p);
    try {
      fs.statSync(target);
      continue;
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
    mkdirAllChownNew(root, path.dirname(p), uid, gid);
    if (typ === 'dir') mkdirAllChownNew(root, p, uid, gid);
    else if (typ === 'file') {
      fs.closeSync(fs.openSync(target, fs.constants.O_CREAT | fs.constants.O_RDONLY, 0o755));
      fs.chownSync(target, uid, gid);
    } else fs.symlinkSync(typ, target);
  }
}

function mkdirAllChownNew(root: string, rel: string, uid: number, gid: number): void {
  let cur = root;
  for (const part of rel.split('/').filter(Boolean)) {
    cur = path.join(cur, part);
    try {
      fs.mkdirSync(cur, 0o755);
      fs.chownSync(cur, uid, gid);
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
  }
}
