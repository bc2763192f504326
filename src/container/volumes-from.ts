// HostConfig.VolumesFrom (`--volumes-from CONTAINER[:MODE]`) as dockerd 20.10
// resolves it (daemon/volumes.go registerMountPoints, parseVolumesFrom): every
// mount point of the other container — volumes, binds and --mount tmpfs alike —
// at the same destination, read-write only if it was and MODE has no "ro".
// The caller lets -v/--mount entries win over these, and these over image or
// anonymous (Config.Volumes) volumes.
import { invalidArgument, isKind } from '../errors/index.js';
import { errInvalidMode, type MountPoint, validMountMode } from '../volume/mounts.js';
import type { Container } from './container.js';

const PROPAGATIONS = new Set(['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave']);

/** [container reference, mode] of one VolumesFrom entry (moby parseVolumesFrom). */
export function parseVolumesFrom(spec: string): [string, string] {
  if (spec === '') throw invalidArgument('volumes-from specification cannot be an empty string');
  const i = spec.indexOf(':');
  if (i < 0) return [spec, 'rw'];
  const mode = spec.slice(i + 1);
  // propagation and copy modes are not allowed here: mounts keep the source's
  const opts = mode.split(',');
  if (!validMountMode(mode) || opts.some((o) => PROPAGATIONS.has(o) || o === 'nocopy')) throw errInvalidMode(mode);
  return [spec.slice(0, i), mode];
}

/**
 * The mount points VolumesFrom brings, by destination (later entries replace
 * earlier ones at the same destination). An unknown container is moby's
 * "No such container: x", as the 400 dockerd 20.10 answers here (a 404 on
 * create would make the CLI try to pull the image).
 */
export function volumesFromMountPoints(
  specs: readonly string[],
  get: (ref: string) => Container,
): Record<string, MountPoint> {
  const out: Record<string, MountPoint> = {};
  for (const spec of specs) {
    const [ref, mode] = parseVolumesFrom(spec);
    const rw = !mode.split(',').includes('ro');
    let other: Container;
    try {
      other = get(ref);
    } catch (e) {
      if (isKind(e, 'not-found')) throw invalidArgument((e as Error).message, e);
      throw e;
    }
    for (const m of Object.values(other.MountPoints)) {
      out[m.Destination] = {
        Source: m.Source,
        Destination: m.Destination,
        RW: m.RW && rw,
        Name: m.Name,
        Driver: m.Driver,
        Type: m.Type,
        Relabel: '', // moby does not copy the mode string: inspect shows Mode ""
        ...(m.Propagation !== undefined ? { Propagation: m.Propagation } : {}),
        Spec: structuredClone(m.Spec ?? {}),
        SkipMountpointCreation: m.SkipMountpointCreation,
        CopyData: false,
      };
    }
  }
  return out;
}
