import { accessSync, constants, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseStageConfig } from '../../lib/stage-config.ts';
import { defaultConfig } from '../../src/config/load.ts';

/**
 * The LocalStack harness cannot run here (no Docker), so its files are checked against each other and
 * against what the stack and the tests expect: the stage config is valid, names the bucket and Glue
 * database the init script creates, and the compose file runs the services and mounts the script.
 */
const at = (path: string) => fileURLToPath(new URL(`../../localstack/${path}`, import.meta.url));
const compose = readFileSync(at('docker-compose.yml'), 'utf8');
const init = at('init/ready.d/10-warehouse.sh');
const setting = (name: string) => new RegExp(`^\\s+${name}: (\\S+)$`, 'm').exec(compose)?.[1];

describe('localstack harness files', () => {
  it('the stage config is valid and names what the init script creates', () => {
    const stage = parseStageConfig(
      JSON.parse(readFileSync(at('stage.json'), 'utf8')),
      'localstack/stage.json',
    );
    expect(stage.warehouse.bucketName).toBe(setting('K2_WAREHOUSE_BUCKET'));
    expect(stage.glueDatabase).toBe(setting('K2_GLUE_DATABASE'));
    expect(stage.createGlueDatabase).toBe(false);
    // The stack refuses tables whose namespace is not the stage's Glue database.
    for (const t of defaultConfig().tables) expect(t.target.namespace).toBe(stage.glueDatabase);
  });

  it('the compose file runs the services the suite and the stack use, and mounts the init script', () => {
    const services = setting('SERVICES')?.split(',') ?? [];
    for (const s of [
      's3',
      'lambda',
      'stepfunctions',
      'cloudwatch',
      'glue',
      'secretsmanager',
      'cloudformation',
    ])
      expect(services, s).toContain(s);
    expect(compose).toContain('./init/ready.d:/etc/localstack/init/ready.d');
    expect(compose).toContain('"127.0.0.1:4566:4566"');
    expect(setting('LAMBDA_DOCKER_NETWORK')).toBe(/networks:\s+k2:\s+name: (\S+)/.exec(compose)?.[1]);
  });

  it('the init script is an executable shell script reading those settings', () => {
    accessSync(init, constants.X_OK);
    const script = readFileSync(init, 'utf8');
    expect(script.startsWith('#!/bin/bash\n')).toBe(true);
    expect(script).toContain('${K2_WAREHOUSE_BUCKET');
    expect(script).toContain('${K2_GLUE_DATABASE');
  });
});
