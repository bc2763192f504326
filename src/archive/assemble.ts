// assembleTar: rebuilds the exact original layer tar from tar-split metadata
// plus the files of the diff directory (what moby's layer store does for
// push/save with asm.NewOutputTarStream + a path file getter). File names are
// resolved inside diffDir with chroot semantics, so a symlink in the layer
// can never make assembly read a file outside it.
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { invalidArgument } from '../errors/index.js';
import { native } from '../native/index.js';
import { resolveDir, rootedPath } from './paths.js';
import { cleanPath } from './tar.js';
import { crcBytes, readTarSplit } from './tarsplit.js';

const CHUNK = 1 << 20;

function q(s: string): string {
  return JSON.stringify(Buffer.from(s, 'latin1').toString('utf8'));
}

function openInRoot(root: string, name: string): number | null {
  const rel = cleanPath(`/${name}`).slice(1);
  if (rel === '') return null;
  const slash = rel.lastIndexOf('/');
  const parent = resolveDir(root, slash < 0 ? [] : rel.slice(0, slash).split('/'), { entry: name });
  if (parent === null) return null;
  const base = rel.slice(slash + 1);
  try {
    return fs.openSync(
      rootedPath(root, parent ? `${parent}/${base}` : base),
      fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW,
    );
  } catch {
    return null;
  }
}

async function* assemble(tarSplitPath: string, diffDir: string): AsyncGenerator<Buffer> {
  const root = diffDir.replace(/\/+$/, '') || '/';
  for await (const e of readTarSplit(fs.createReadStream(tarSplitPath))) {
    if (e.type === 2) {
      if (e.payload?.length) yield e.payload;
      continue;
    }
    if (e.size === 0) continue;
    const want = e.payload ?? Buffer.alloc(8);
    const fd = openInRoot(root, e.name);
    if (fd === null) throw invalidArgument(`assembling layer: file ${q(e.name)} is missing from ${q(root)}`);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) {
        // A header-only entry (e.g. a directory) whose size field is non-zero:
        // tar-split recorded the CRC of zero bytes and no data followed it.
        if (want.equals(crcBytes(0n))) continue;
        throw invalidArgument(`assembling layer: ${q(e.name)} is not a regular file`);
      }
      let crc = 0n;
      let total = 0;
      for (;;) {
        const buf = Buffer.allocUnsafe(Math.min(CHUNK, e.size - total + 1));
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        total += n;
        if (total > e.size) throw invalidArgument(`assembling layer: file ${q(e.name)} is larger than ${e.size} bytes`);
        const out = n === buf.length ? buf : buf.subarray(0, n);
        crc = native.crc64(out, crc);
        yield out;
      }
      if (total !== e.size)
        throw invalidArgument(`assembling layer: file ${q(e.name)} has ${total} bytes, expected ${e.size}`);
      if (!crcBytes(crc).equals(want)) throw invalidArgument(`file integrity checksum failed for ${q(e.name)}`);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** The byte-identical original tar of a layer, from its tar-split file and diff directory. */
export function assembleTar(tarSplitPath: string, diffDir: string): Readable {
  return Readable.from(assemble(tarSplitPath, diffDir), { objectMode: false });
}
