// Linux dev_t as stat reports it (glibc's gnu_dev_major/minor): the major is
// bits 8-19 and 32-43, the minor bits 0-7 and 20-31.

export function devMajor(rdev: number): number {
  return ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
}

export function devMinor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
}
