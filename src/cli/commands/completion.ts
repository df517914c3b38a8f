import { loadConfig } from '../../config/load.ts';
import { InputError } from '../../errors.ts';
import { COMMON_OPTIONS } from '../args.ts';
import type { Command } from '../context.ts';

const SHELLS = ['bash', 'zsh'] as const;

/** What a shell completes after each command: its actions (watermark show...) and options. */
export type CompletionSpec = { name: string; actions: readonly string[]; options: string[] };

export function completionSpecs(commands: readonly Command[]): CompletionSpec[] {
  return commands.map((c) => ({
    name: c.name,
    actions: c.actions ?? [],
    options: Object.keys({ ...c.options, ...COMMON_OPTIONS }).map((o) => `--${o}`),
  }));
}

const words = (list: readonly string[]) => list.join(' ');

/**
 * A bash completion script: commands, then each command's actions and options, and table names after
 * `--table`/`--tables` (those of the config in force when the script was made). zsh loads it through
 * bashcompinit, so one script serves both.
 */
export function completionScript(shell: 'bash' | 'zsh', specs: CompletionSpec[], tables: string[]): string {
  const cases = specs
    .map((s) => `    ${s.name}) words="${words([...s.actions, ...s.options])}" ;;`)
    .join('\n');
  return [
    `# k2-offload completion; load with: source <(k2-offload completion ${shell})`,
    ...(shell === 'zsh' ? ['autoload -U +X bashcompinit && bashcompinit'] : []),
    '_k2_offload() {',
    '  local cur prev words',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's own ${...}, not a template
    '  cur="${COMP_WORDS[COMP_CWORD]}"',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's own ${...}, not a template
    '  prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  if [ "$COMP_CWORD" -eq 1 ]; then',
    `    COMPREPLY=( $(compgen -W "${words(specs.map((s) => s.name))} help --help --version" -- "$cur") )`,
    '    return',
    '  fi',
    '  case "$prev" in',
    `    --table|--tables) COMPREPLY=( $(compgen -W "${words(tables)}" -- "$cur") ); return ;;`,
    '    --config) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;',
    '  esac',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's own ${...}, not a template
    '  case "${COMP_WORDS[1]}" in',
    cases,
    `    help) words="${words(specs.map((s) => s.name))}" ;;`,
    '    *) words="" ;;',
    '  esac',
    '  COMPREPLY=( $(compgen -W "$words" -- "$cur") )',
    '}',
    'complete -F _k2_offload k2-offload',
    '',
  ].join('\n');
}

/** `k2-offload completion bash|zsh`: prints the script; the command list comes from the CLI itself. */
export function completionCommand(commands: () => readonly Command[]): Command {
  return {
    name: 'completion',
    summary: 'print a shell completion script (bash or zsh)',
    usage: 'bash|zsh',
    description: [
      'Prints a completion script for commands, actions, options and table names. Load it with',
      '  source <(k2-offload completion bash)     # in ~/.bashrc',
      '  source <(k2-offload completion zsh)      # in ~/.zshrc',
    ].join('\n'),
    options: {},
    maxPositionals: 1,
    actions: SHELLS,
    async run(args, ctx) {
      const shell = args.positionals[0];
      if (shell !== 'bash' && shell !== 'zsh')
        throw new InputError(
          `${shell ? `unknown shell ${JSON.stringify(shell)}` : 'a shell is required'}; use bash or zsh`,
          { value: shell },
        );
      const tables = (await loadConfig(ctx.configPath)).tables.map((t) => t.name);
      ctx.io.stdout.write(completionScript(shell, completionSpecs(commands()), tables));
      return 0;
    },
  };
}
