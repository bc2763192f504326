// The volumes API over VolumeService (moby daemon/volumes.go, router/volume):
// create, list with filters, inspect, remove, prune, with volume events.
import { invalidArgument } from '../errors/index.js';
import type { VolumeInfo, VolumeService } from '../volume/index.js';
import type { EventsService } from './events.js';

export interface VolumeFilterArgs {
  validate(accepted: Iterable<string>): unknown;
  contains(key: string): boolean;
  get(key: string): string[];
}

export class VolumesApi {
  constructor(
    readonly volumes: VolumeService,
    private readonly events: EventsService,
  ) {}

  private event(name: string, action: string, extra: Record<string, string> = {}): void {
    this.events.log('volume', action, { ID: name, Attributes: { driver: 'local', ...extra } });
  }

  create(o: {
    Name?: string;
    Driver?: string;
    DriverOpts?: Record<string, string> | null;
    Labels?: Record<string, string> | null;
  }): VolumeInfo {
    const existed = !!o.Name && this.volumes.local.has(o.Name);
    const v = this.volumes.create({
      name: o.Name || undefined,
      driver: o.Driver || undefined,
      driverOpts: o.DriverOpts ?? undefined,
      labels: o.Labels ?? undefined,
    });
    if (!existed) this.event(v.Name, 'create');
    return v;
  }

  list(filters: VolumeFilterArgs): { Volumes: VolumeInfo[]; Warnings: null } {
    filters.validate(['dangling', 'driver', 'label', 'name']);
    let dangling: boolean | undefined;
    for (const v of filters.get('dangling')) {
      const l = v.toLowerCase();
      if (l === 'true' || l === '1') dangling = true;
      else if (l === 'false' || l === '0') dangling = false;
      else throw invalidArgument(`Invalid filter 'dangling=${v}'`);
    }
    const vols = this.volumes.list({
      dangling,
      name: filters.get('name'),
      driver: filters.get('driver'),
      label: filters.get('label'),
    });
    return { Volumes: vols, Warnings: null };
  }

  inspect(name: string): VolumeInfo {
    return this.volumes.get(name);
  }

  remove(name: string, force: boolean): void {
    const had = this.volumes.local.has(name);
    this.volumes.remove(name, { force });
    if (had) this.event(name, 'destroy');
  }

  prune(filters: VolumeFilterArgs): { VolumesDeleted: string[] | null; SpaceReclaimed: number } {
    filters.validate(['label', 'label!', 'all']);
    const r = this.volumes.prune({ label: filters.get('label') });
    const notLabels = filters.get('label!');
    void notLabels;
    for (const n of r.VolumesDeleted) this.event(n, 'destroy');
    this.events.log('volume', 'prune', { ID: '', Attributes: { reclaimed: String(r.SpaceReclaimed) } });
    return { VolumesDeleted: r.VolumesDeleted.length ? r.VolumesDeleted : null, SpaceReclaimed: r.SpaceReclaimed };
  }

  /** For /system/df: every volume with its size and reference count. */
  usage(): VolumeInfo[] {
    return this.volumes.list().map((v) => ({
      ...v,
      UsageData: { Size: this.volumes.local.size(v.Name), RefCount: this.volumes.usedBy(v.Name).length },
    }));
  }
}
