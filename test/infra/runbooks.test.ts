import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RUNBOOKS } from '../../lib/constructs/alarms.ts';
import { ALARM_NAMES } from '../../src/metrics/names.ts';
import { PROJECT_ROOT } from './support.ts';

const DIR = join(PROJECT_ROOT, 'docs', 'runbooks');
const files = readdirSync(DIR).filter((f) => f.endsWith('.md'));
const text = (file: string) => readFileSync(join(DIR, file), 'utf8');
const codeBlocks = (md: string) => [...md.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replace(/ /g, '-');

const SUBCOMMANDS =
  /^k2-offload (status|run|plan|catch-up|watermark (show|set|reset|rewind|release)|audit|repair|maintain|config suggest)(\s|$)/;

describe('runbooks', () => {
  it('exist for every alarm, and the index maps each alarm name to its runbook', () => {
    const index = text('README.md');
    for (const [key, file] of Object.entries(RUNBOOKS)) {
      expect(existsSync(join(DIR, file)), file).toBe(true);
      const name = ALARM_NAMES[key as keyof typeof ALARM_NAMES];
      if (file !== 'README.md') {
        expect(index, name).toMatch(new RegExp(`\`${name}\`[^\\n]*\\(${file.replace('.', '\\.')}\\)`));
        expect(text(file).split('\n')[0], file).toBe(`# ${name}`);
      }
    }
  });

  it('never give Athena a CALL (Athena has no procedures): a CALL is Spark SQL, and says so', () => {
    for (const file of files)
      for (const line of text(file).split('\n'))
        if (/\bCALL\b/.test(line)) expect(line, `${file}: ${line}`).toMatch(/Spark SQL, not Athena/);
  });

  it('use only commands this project has', () => {
    for (const file of files)
      for (const block of codeBlocks(text(file)))
        for (const line of block.split('\n').map((l) => l.trim()))
          if (line.startsWith('k2-offload')) expect(line, `${file}: ${line}`).toMatch(SUBCOMMANDS);
  });

  it('never set a watermark from ClickHouse values, and reset only with --force and a reason', () => {
    for (const file of files) {
      const md = text(file);
      for (const block of codeBlocks(md)) {
        expect(block, file).not.toMatch(/(UPDATE|INSERT INTO|DELETE FROM)\s+\S*watermark/i);
        const commands = block.replace(/\\\n\s*/g, ' ').split('\n');
        for (const c of commands.filter((l) => /watermark (set|reset|rewind|release)/.test(l))) {
          expect(c, file).toMatch(/--reason "/);
          expect(c, file).not.toMatch(/max\(|now\(\)/i);
          if (c.includes('watermark reset')) expect(c, file).toMatch(/--force/);
        }
      }
    }
  });

  it('link only to runbooks and headings that exist', () => {
    for (const file of files) {
      for (const [, target, anchor] of text(file).matchAll(/\]\(([a-z-]+\.md)?(?:#([a-z0-9-]+))?\)/g)) {
        const linked = target ?? file;
        expect(existsSync(join(DIR, linked)), `${file} -> ${linked}`).toBe(true);
        if (anchor) {
          const headings = [...text(linked).matchAll(/^#{1,4} (.+)$/gm)].map((m) => slug(m[1] ?? ''));
          expect(headings, `${file} -> ${linked}#${anchor}`).toContain(anchor);
        }
      }
    }
  });
});
