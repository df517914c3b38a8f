import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { addNagChecks } from '../lib/nag.ts';
import { OffloadStack } from '../lib/stacks/offload-stack.ts';
import { loadStageConfig } from '../lib/stage-config.ts';
import { loadConfig } from '../src/config/load.ts';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const app = new App();
const stage = loadStageConfig((key) => app.node.tryGetContext(key));
const tables = await loadConfig(stage.tablesConfig ? join(projectRoot, stage.tablesConfig) : undefined);

new OffloadStack(app, `K2Offload-${stage.stage}`, {
  stage,
  tables,
  projectRoot,
  description: `k2 cold-tier offload (${stage.stage}): ClickHouse -> Iceberg every cycle, exactly once`,
  ...(stage.account || stage.region ? { env: { account: stage.account, region: stage.region } } : {}),
});
addNagChecks(app);
