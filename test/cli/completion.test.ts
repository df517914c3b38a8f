import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cli } from './support.ts';

/** What bash offers after typing `line` (the last word is being completed), with the script loaded. */
function complete(script: string, line: string[]): string[] {
  const words = line.map((w) => `'${w}'`).join(' ');
  const r = spawnSync(
    'bash',
    [
      '-c',
      `${script}\nCOMP_WORDS=(${words}); COMP_CWORD=${line.length - 1}; _k2_offload; echo "\${COMPREPLY[@]}"`,
    ],
    { encoding: 'utf8' },
  );
  expect(r.stderr).toBe('');
  return r.stdout.trim().split(/\s+/).filter(Boolean);
}

describe('k2-offload completion', () => {
  it('completes commands, actions, options and the configured table names in bash', async () => {
    const r = await cli(['completion', 'bash'], {});
    expect(r.code).toBe(0);
    expect(complete(r.stdout, ['k2-offload', 'wat'])).toEqual(['watermark']);
    expect(complete(r.stdout, ['k2-offload', 'watermark', 's'])).toEqual(['show', 'set']);
    expect(complete(r.stdout, ['k2-offload', 'run', '--ta'])).toEqual(['--tables']);
    expect(complete(r.stdout, ['k2-offload', 'run', '--tables', 'silver'])).toEqual(['silver_trades']);
    expect(complete(r.stdout, ['k2-offload', 'help', 'cat'])).toEqual(['catch-up']);
  });

  it('loads in zsh through bashcompinit, and refuses other shells', async () => {
    expect((await cli(['completion', 'zsh'], {})).stdout).toContain('bashcompinit');
    const fish = await cli(['completion', 'fish'], {});
    expect(fish.code).toBe(2);
    expect(fish.stderr).toContain('unknown shell "fish"; use bash or zsh');
  });
});
