// Placeholder until the registry server lands: says so plainly.
export async function main(_argv: string[]): Promise<number> {
  console.error('berth registry: not built yet');
  return 1;
}
