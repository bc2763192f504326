// Runs the conformance cases against berth registry and against Debian's
// docker-registry 2.8 (to prove the suite). Cases distribution is known to fail
// are `todo` there (run, reported, not fatal) and must pass on berth.
import { after, before, describe, test } from 'node:test';
import { type Case, type Ctx, cases } from './conformance-cases.js';
import { haveDistribution, startBerth, startDistribution, type Target } from './helpers.js';

function run(label: 'berth' | 'distribution', start: () => Promise<Target>) {
  describe(`conformance against ${label}`, { timeout: 90_000 }, () => {
    let target: Target;
    const ctx: Ctx = { url: '', target: label, ns: 'conformance/test-repo', crossNs: 'conformance/cross', s: {} };
    before(async () => {
      target = await start();
      ctx.url = target.url;
    });
    after(async () => {
      await target?.close();
    });
    const byWorkflow = new Map<string, Case[]>();
    for (const c of cases()) byWorkflow.set(c.workflow, [...(byWorkflow.get(c.workflow) ?? []), c]);
    for (const [wf, cs] of byWorkflow) {
      describe(wf, () => {
        for (const c of cs) {
          const todo = label === 'distribution' && c.distFails ? `distribution 2.8: ${c.distFails}` : undefined;
          test(c.name, todo ? { todo } : {}, () => c.fn(ctx));
        }
      });
    }
  });
}

run('berth', () => startBerth());
if (haveDistribution) run('distribution', () => startDistribution());
else test('docker-registry 2.8 not installed', { skip: true }, () => {});
