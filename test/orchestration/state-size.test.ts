import '../../src/orchestration/promise-with-resolvers.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/load.ts';
import type { OffloadConfig } from '../../src/config/schema.ts';
import { SchemaDriftError } from '../../src/errors.ts';
import { STATE_NAMES } from '../../src/orchestration/asl.ts';
import { stateMachineDefinition, synthesize } from '../infra/support.ts';
import { FakeCycle, type FakeTable } from './fake-cycle.ts';

/** Step Functions refuses a state input or output above 256 KB (States.DataLimitExceeded). */
const STATE_LIMIT_BYTES = 256 * 1024;
const TABLES = 200;
const BATCHES = 8; // the planner's cap per table and pass

/** 200 bronze tables, one layer: the widest fan-out, all outcomes collected by one Map. */
function wideConfig(): OffloadConfig {
  const [bronze] = defaultConfig().tables;
  if (!bronze) throw new Error('the default config has no tables');
  return {
    tables: Array.from({ length: TABLES }, (_, i) => {
      const name = `bronze_trades_exchange_${String(i).padStart(3, '0')}`;
      return { ...bronze, name, target: { ...bronze.target, name } };
    }),
  };
}

const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value ?? null));

type Measured = { max: number; where: string; output: unknown };

/**
 * Runs a definition in-process with the fake's handlers and measures every payload Step Functions
 * would check: each state's input and output (nested Map iterations included) and each task's result.
 */
async function measure(world: FakeCycle, definition: unknown): Promise<Measured> {
  const seen: Measured = { max: 0, where: '', output: undefined };
  const note = (size: number, where: string) => {
    if (size > seen.max) Object.assign(seen, { max: size, where });
  };
  const handlers = Object.fromEntries(
    Object.entries(world.handlers()).map(([name, handler]) => [
      name,
      async (input: unknown) => {
        const result = await handler(input);
        note(bytes(result), `${name} result`);
        return result;
      },
    ]),
  );
  const machine = new StateMachine(definition as never, { validationOptions: { checkArn: false } });
  const zero = Object.fromEntries(Object.values(STATE_NAMES).map((name) => [name, 0]));
  const run = machine.run({} as never, {
    overrides: {
      taskResourceLocalHandlers: handlers as never,
      retryIntervalOverrides: zero,
      waitTimeOverrides: { [STATE_NAMES.waitForEmrJob]: 0 },
    },
  });
  const events = (async () => {
    for await (const event of run.eventLogs) {
      const e = event as { type: string; state?: { name: string; input?: unknown; output?: unknown } };
      if (e.state) {
        note(bytes(e.state.input), `${e.state.name} input`);
        if ('output' in e.state) note(bytes(e.state.output), `${e.state.name} output`);
      }
    }
  })();
  seen.output = await run.result;
  await events;
  return seen;
}

describe(`a ${TABLES}-table config through the synthesized state machine`, () => {
  let definition: Record<string, unknown>;
  const tables = (): FakeTable[] =>
    wideConfig().tables.map((t, i) => ({
      name: t.name,
      layer: t.layer,
      backlog: BATCHES,
      // Every fourth table through the Spark job's poll-and-heartbeat loop.
      committer: i % 4 === 0 ? ('emr' as const) : ('lambda' as const),
    }));
  const world = () => {
    const w = new FakeCycle(tables(), BATCHES);
    w.cycleId = 'cycle-2026-11-22T00-00-00-000Z-a1b2c3';
    return w;
  };

  beforeAll(() => {
    // The definition exactly as `cdk deploy` would create it for this config (ARNs printed as tokens).
    definition = stateMachineDefinition(synthesize({}, wideConfig()).template);
  }, 120_000);

  it('needs the hand-off: the whole plan alone is past the state limit', () => {
    expect(bytes(world().plan({}))).toBeGreaterThan(STATE_LIMIT_BYTES);
  });

  it('runs every batch of every table with no state payload above 256 KB', async () => {
    const w = world();
    const seen = await measure(w, definition);
    console.log(
      `${TABLES} tables x ${BATCHES} batches: largest state payload ${(seen.max / 1024).toFixed(1)} KB (${seen.where}), limit 256 KB`,
    );
    expect(w.entries('watermark')).toHaveLength(TABLES * BATCHES);
    expect(w.entries('failure')).toEqual([]);
    expect(seen.max).toBeLessThan(STATE_LIMIT_BYTES);
  }, 120_000);

  it('stays under the limit when every table fails with a long error', async () => {
    const w = world();
    // A failure storm (ClickHouse gone, a bad deploy): each caught error carries a long Cause.
    for (const t of w.tables)
      w.fail(
        STATE_NAMES.stageBatch,
        t.name,
        new SchemaDriftError(`column price changed type\n${'at '.repeat(10_000)}`),
      );
    const seen = await measure(w, definition);
    console.log(
      `${TABLES} tables failing: largest state payload ${(seen.max / 1024).toFixed(1)} KB (${seen.where}), limit 256 KB`,
    );
    expect(w.entries('failure')).toHaveLength(TABLES);
    expect(w.entries('publish')).toHaveLength(1);
    expect(seen.max).toBeLessThan(STATE_LIMIT_BYTES);
  }, 120_000);
});
