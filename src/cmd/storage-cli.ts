// Placeholder until the stores land: says so plainly.
export async function main(_argv: string[]): Promise<number> {
  console.error('berth storage: not built yet');
  return 1;
}
