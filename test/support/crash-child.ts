/**
 * A pipeline process for the multi-process resilience tests, run with tsx as a child of the test:
 *
 *   tsx test/support/crash-child.ts '<json ChildPlan>'
 *
 * It opens the same rig as the tests (chDB data dir, Postgres database, warehouse, fake clock), runs its
 * steps in order and prints one JSON line per step on stdout. A step may ask for a crash at a fault
 * point: the process then dies right there (exit code CRASH_EXIT_CODE), with nothing after it run, no
 * connection closed and no lease released, as a killed Lambda or a host losing power would.
 */
import { existsSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crashAt, type FaultPoint, type Faults } from '../../src/pipeline/faults.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { type ChildLine, type ChildPlan, CRASH_EXIT_CODE } from '../resilience/children.ts';
import { configWith, fakeClock, openRig, tradeFeed } from '../resilience/harness.ts';
import { verifyAll } from '../resilience/verify.ts';

const say = (line: ChildLine | Record<string, unknown>) => writeSync(1, `${JSON.stringify(line)}\n`);

/** Dies at the fault point itself: not even the step's own error handling runs. */
function dyingAt(point: FaultPoint, table: string | undefined): Faults {
  const inner = crashAt(point, table ? { table } : {});
  return {
    hit(at, context) {
      try {
        inner.hit(at, context);
      } catch {
        say({ crashed: point, table: context.table, batchId: context.batchId ?? null });
        process.exit(CRASH_EXIT_CODE);
      }
    },
  };
}

/** Says it is ready (everything open), then waits for the go file: two children start together. */
async function atBarrier(barrier: { ready: string; go: string }) {
  writeFileSync(barrier.ready, '');
  const deadline = Date.now() + 120_000;
  while (!existsSync(barrier.go)) {
    if (Date.now() > deadline) throw new Error(`no ${barrier.go} within 120 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main(plan: ChildPlan) {
  // Every step sets the clock; a plan without steps reads no time.
  const clock = fakeClock(plan.steps[0]?.at ?? Date.now());
  const caps = plan.caps ?? {};
  const rig = await openRig({
    dir: plan.dir,
    databaseUrl: plan.databaseUrl,
    clock,
    chdbDir: join(plan.dir, plan.chdb ?? 'chdb'),
    ...(plan.caps ? { config: configWith(() => caps) } : {}),
  });
  if (plan.barrier) await atBarrier(plan.barrier);
  for (const [index, step] of plan.steps.entries()) {
    clock.set(step.at);
    if (step.feed) await tradeFeed(rig.clickhouse, clock, step.feed)();
    const line: ChildLine = { step: index, at: clock.now().toISOString() };
    if (step.cycle) {
      const faults = step.cycle.crash ? dyingAt(step.cycle.crash.point, step.cycle.crash.table) : undefined;
      const result = await runCycle(rig.deps(faults ? { faults } : {}), step.cycle.input ?? {});
      line.passes = result.passes.map((p) => ({
        status: p.status,
        rows: p.rows,
        skipped: p.skipped.map((s) => ({ table: s.table, reason: s.reason })),
      }));
      line.failed = result.passes.flatMap((p) =>
        p.tables.filter((t) => t.status === 'failed').map((t) => t.table),
      );
    }
    if (step.verify) line.problems = (await verifyAll(rig.deps())).problems;
    say(line);
  }
  await rig.close();
}

const arg = process.argv[2];
if (!arg) {
  process.stderr.write('usage: tsx test/support/crash-child.ts <json plan>\n');
  process.exit(2);
}
main(JSON.parse(arg) as ChildPlan).catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
