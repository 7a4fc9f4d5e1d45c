// `pilotctl completion bash|zsh|fish`: a static completion script generated from the command table — the same
// one that drives the parser, `help` and `context` — so completions cannot drift from what pilotctl accepts.
// Static (no `pilotctl` run per Tab press: node would start each time). All three scripts work the same way:
// walk the words typed so far (skipping global flags and the values of flags that take one), find the command
// ("daemon" + "start" → "daemon start"), then offer subcommands, the command's flags plus the global ones, or
// the values of the argument or flag being typed (shells, config keys, files, command names for `help`).
import { err, ok } from '../core/result.js';
import { GLOBAL_FLAGS, type FlagSpec } from './args.js';
import { defineCommand, type Command } from './command.js';
import { CONFIG_KEYS } from './config-cmd.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** What a value completes to: fixed words, or files / directories. */
type Values = { words: string[] } | 'file' | 'dir';

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'];

/** Values of flags, by flag name (any command). Path-like placeholders complete files. */
function flagValues(f: FlagSpec): Values | null {
  if (f.name === 'home') return 'dir';
  if (f.name === 'log-level') return { words: LOG_LEVELS };
  if (f.name === 'log-format') return { words: ['json', 'pretty'] };
  if (f.name === 'transport') return { words: ['auto', 'udp', 'tcp'] };
  if (f.value && /^[a-z0-9-]+(\|[a-z0-9-]+)+$/.test(f.value)) return { words: f.value.split('|') };
  if (f.value === '<path>' || f.value === '<file>') return 'file';
  if (f.value === '<dir>') return 'dir';
  return null;
}

interface Model {
  /** First words of every command, with a description. */
  words: Array<[string, string]>;
  /** Group word → [subcommand, description]. */
  subs: Map<string, Array<[string, string]>>;
  /** Full command name → its flags. */
  flags: Map<string, FlagSpec[]>;
  /** Full command name → values of positional argument i (absent: none). */
  args: Map<string, Array<Values | 'command' | 'subcommand' | null>>;
}

const SAFE_NAME = /^[a-z][a-z0-9-]*( [a-z][a-z0-9-]*)?$/;

function buildModel(commands: Command[]): Model {
  const words = new Map<string, string>();
  const subs = new Map<string, Array<[string, string]>>();
  const flags = new Map<string, FlagSpec[]>();
  const args = new Map<string, Array<Values | 'command' | 'subcommand' | null>>();
  const keys = CONFIG_KEYS.map((k) => k.key);
  for (const c of commands) {
    if (!SAFE_NAME.test(c.name)) continue; // names go into shell code unquoted in places
    const [w, sub] = c.name.split(' ') as [string, string | undefined];
    if (sub === undefined) words.set(w, c.summary);
    else {
      if (!words.has(w)) words.set(w, '');
      subs.set(w, [...(subs.get(w) ?? []), [sub, c.summary]]);
    }
    flags.set(c.name, c.flags.filter((f) => /^[a-z][a-z0-9-]*$/.test(f.name)));
    const a: Array<Values | 'command' | 'subcommand' | null> = c.args.map((spec) => (spec.name === 'path' ? 'file' : null));
    if (c.name === 'completion') a[0] = { words: [...SHELLS] };
    if (c.name === 'help') a.splice(0, a.length, 'command', 'subcommand');
    if (c.name.startsWith('config ') && c.args[0]?.name === 'key') a[0] = { words: keys };
    args.set(c.name, a);
  }
  for (const [w, s] of subs) if (!words.get(w)) words.set(w, `${w} ${s.map((x) => x[0]).join('|')}`);
  return { words: [...words], subs, flags, args };
}

const sq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();

/** Shell `case` arms shared by bash and zsh (POSIX syntax): subcommands, flags, value flags, flag/arg values. */
function posixHelpers(m: Model, prefix: string): string {
  const valueFlags = (fs: FlagSpec[]): string => fs.filter((f) => f.kind !== 'bool').map((f) => `--${f.name}`).join(' ');
  const valuesText = (v: Values | null): string | null => (v === null ? null : v === 'file' ? '@file' : v === 'dir' ? '@dir' : v.words.join(' '));
  let s = `${prefix}_subs() {\n  case "$1" in\n`;
  for (const [w, subs] of m.subs) s += `    ${sq(w)}) echo ${sq(subs.map((x) => x[0]).join(' '))} ;;\n`;
  s += `  esac\n}\n${prefix}_flags() {\n  case "$1" in\n`;
  for (const [c, fs] of m.flags) if (fs.length) s += `    ${sq(c)}) echo ${sq(fs.map((f) => `--${f.name}`).join(' '))} ;;\n`;
  s += `  esac\n}\n# flags that take a value (the next word is that value, not an argument)\n${prefix}_value_flags() {\n  case "$1" in\n`;
  for (const [c, fs] of m.flags) if (valueFlags(fs)) s += `    ${sq(c)}) echo ${sq(' ' + valueFlags(fs) + ' ')} ;;\n`;
  s += `  esac\n}\n# values of a flag: words, @file or @dir\n${prefix}_flag_values() {\n  case "$1" in\n`;
  const seen = new Map<string, string>();
  for (const f of [...GLOBAL_FLAGS, ...[...m.flags.values()].flat()]) {
    const v = valuesText(flagValues(f));
    if (v !== null && !seen.has(f.name)) seen.set(f.name, v);
  }
  for (const [n, v] of seen) s += `    --${n}) echo ${sq(v)} ;;\n`;
  s += `  esac\n}\n# values of positional argument $2 of command $1 ($3: the first argument): words, @file, @dir\n${prefix}_arg_values() {\n  case "$1:$2" in\n`;
  for (const [c, as] of m.args) {
    as.forEach((v, i) => {
      if (v === null) return;
      if (v === 'command') s += `    ${sq(`${c}:${i}`)}) echo ${sq(m.words.map((w) => w[0]).join(' '))} ;;\n`;
      else if (v === 'subcommand') s += `    ${sq(`${c}:${i}`)}) ${prefix}_subs "$3" ;;\n`;
      else s += `    ${sq(`${c}:${i}`)}) echo ${sq(valuesText(v)!)} ;;\n`;
    });
  }
  s += `  esac\n}\n`;
  return s;
}

/** The word-walk shared by bash and zsh: sets cmd, nargs, first, skip from words[start..end). */
function posixWalk(prefix: string, wordsExpr: (i: string) => string, start: number, endExpr: string): string {
  const globals = GLOBAL_FLAGS.filter((f) => f.kind !== 'bool').map((f) => `--${f.name}`).join(' ');
  return `  local cmd="" first="" nargs=0 skip=0 i w
  for ((i = ${start}; i < ${endExpr}; i++)); do
    w="${wordsExpr('i')}"
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$w" in
      --*=*) continue ;;
      --*) case " ${globals} $(${prefix}_value_flags "$cmd") " in *" $w "*) skip=1 ;; esac; continue ;;
    esac
    if [ -z "$cmd" ]; then cmd="$w"
    elif [ "$nargs" = 0 ] && case " $(${prefix}_subs "$cmd") " in *" $w "*) true ;; *) false ;; esac; then cmd="$cmd $w"
    else
      [ "$nargs" = 0 ] && first="$w"
      nargs=$((nargs + 1))
    fi
  done
`;
}

export function bashScript(commands: Command[], version: string): string {
  const m = buildModel(commands);
  const p = '__pilotctl';
  const globals = GLOBAL_FLAGS.map((f) => `--${f.name}`).join(' ');
  return `# bash completion for pilotctl ${version} — generated by \`pilotctl completion bash\` from its command table.
# Load now:    source <(pilotctl completion bash)
# Keep it:     pilotctl completion bash > ~/.local/share/bash-completion/completions/pilotctl
${p}_words=${sq(m.words.map((w) => w[0]).join(' '))}
${p}_globals=${sq(globals)}
${posixHelpers(m, p)}${p}_reply() { # $1: words or @file/@dir, $2: the word being completed
  case "$1" in
    @file) COMPREPLY=($(compgen -f -- "$2")) ;;
    @dir) COMPREPLY=($(compgen -d -- "$2")) ;;
    *) COMPREPLY=($(compgen -W "$1" -- "$2")) ;;
  esac
}
_pilotctl() {
  COMPREPLY=()
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev=""
  [ "$COMP_CWORD" -gt 0 ] && prev="\${COMP_WORDS[COMP_CWORD-1]}"
${posixWalk(p, (i) => `\${COMP_WORDS[${i}]}`, 1, '$COMP_CWORD')}  if [ "$skip" = 1 ]; then ${p}_reply "$(${p}_flag_values "$prev")" "$cur"; return 0; fi
  case "$cur" in
    -*) ${p}_reply "$(${p}_flags "$cmd") $${p}_globals" "$cur"; return 0 ;;
  esac
  if [ -z "$cmd" ]; then ${p}_reply "$${p}_words" "$cur"; return 0; fi
  local subs; subs="$(${p}_subs "$cmd")"
  if [ -n "$subs" ] && [ "$nargs" = 0 ]; then ${p}_reply "$subs" "$cur"; return 0; fi
  ${p}_reply "$(${p}_arg_values "$cmd" "$nargs" "$first")" "$cur"
  return 0
}
complete -F _pilotctl pilotctl
`;
}

export function zshScript(commands: Command[], version: string): string {
  const m = buildModel(commands);
  const p = '__pilotctl';
  const desc = (pairs: Array<[string, string]>): string => pairs.map(([w, d]) => sq(`${w.replace(/:/g, '\\:')}:${oneLine(d)}`)).join(' ');
  let flagDesc = `${p}_flag_descriptions() {\n  case "$1" in\n`;
  for (const [c, fs] of m.flags) if (fs.length) flagDesc += `    ${sq(c)}) reply=(${desc(fs.map((f) => [`--${f.name}`, f.description]))}) ;;\n`;
  flagDesc += `    *) reply=() ;;\n  esac\n}\n`;
  let subDesc = `${p}_sub_descriptions() {\n  case "$1" in\n`;
  for (const [w, subs] of m.subs) subDesc += `    ${sq(w)}) reply=(${desc(subs)}) ;;\n`;
  subDesc += `    *) reply=() ;;\n  esac\n}\n`;
  return `#compdef pilotctl
# zsh completion for pilotctl ${version} — generated by \`pilotctl completion zsh\` from its command table.
# Load now:    source <(pilotctl completion zsh)      (after compinit)
# Keep it:     pilotctl completion zsh > "\${fpath[1]}/_pilotctl"
${posixHelpers(m, p)}${flagDesc}${subDesc}${p}_commands=(${desc(m.words)})
${p}_global_descriptions=(${desc(GLOBAL_FLAGS.map((f) => [`--${f.name}`, f.description]))})
${p}_values() { # $1: words or @file/@dir
  case "$1" in
    @file) _files ;;
    @dir) _files -/ ;;
    '') return 1 ;;
    *) compadd -- \${=1} ;;
  esac
}
_pilotctl() {
  local cur="\${words[CURRENT]}" prev="\${words[CURRENT-1]}"
  local -a reply
${posixWalk(p, (i) => `\${words[${i}]}`, 2, '$CURRENT')}  if [ "$skip" = 1 ]; then ${p}_values "$(${p}_flag_values "$prev")"; return; fi
  if [[ "$cur" == -* ]]; then
    ${p}_flag_descriptions "$cmd"
    _describe -t flags 'flag' reply -- ${p}_global_descriptions
    return
  fi
  if [ -z "$cmd" ]; then _describe -t commands 'pilotctl command' ${p}_commands; return; fi
  if [ -n "$(${p}_subs "$cmd")" ] && [ "$nargs" = 0 ]; then
    ${p}_sub_descriptions "$cmd"
    _describe -t commands "pilotctl $cmd subcommand" reply
    return
  fi
  ${p}_values "$(${p}_arg_values "$cmd" "$nargs" "$first")"
}
if [ "$funcstack[1]" = "_pilotctl" ]; then
  _pilotctl "$@"
else
  compdef _pilotctl pilotctl
fi
`;
}

/** fish: -r -F for a file value, -x (a value, no files) with its words or directories, nothing for a bool. */
function fishValue(f: FlagSpec, v: Values | null): string {
  if (f.kind === 'bool') return '';
  if (v === 'file') return ' -r -F';
  if (v === 'dir') return " -x -a '(__fish_complete_directories)'";
  if (v === null) return ' -x';
  return ` -x -a '${v.words.join(' ')}'`;
}

export function fishScript(commands: Command[], version: string): string {
  const m = buildModel(commands);
  const p = '__pilotctl';
  const fq = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  let s = `# fish completion for pilotctl ${version} — generated by \`pilotctl completion fish\` from its command table.
# Load now:    pilotctl completion fish | source
# Keep it:     pilotctl completion fish > ~/.config/fish/completions/pilotctl.fish
function ${p}_subs
    switch $argv[1]
`;
  for (const [w, subs] of m.subs) s += `        case ${fq(w)}\n            printf '%s\\n' ${subs.map((x) => fq(x[0])).join(' ')}\n`;
  s += `    end
end
function ${p}_takes_value --argument-names cmd flag
    switch $flag
        case ${GLOBAL_FLAGS.filter((f) => f.kind !== 'bool').map((f) => fq(`--${f.name}`)).join(' ')}
            return 0
    end
    switch $cmd
`;
  for (const [c, fs] of m.flags) {
    const vf = fs.filter((f) => f.kind !== 'bool');
    if (vf.length) s += `        case ${fq(c)}\n            contains -- $flag ${vf.map((f) => fq(`--${f.name}`)).join(' ')}; and return 0\n`;
  }
  s += `    end
    return 1
end
# prints the command, the number of its positional arguments so far, and the first one
function ${p}_state
    set -l toks (commandline -opc)
    set -e toks[1]
    set -l cmd ''
    set -l nargs 0
    set -l first ''
    set -l skip 0
    for w in $toks
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case '--*=*'
                continue
            case '--*'
                ${p}_takes_value "$cmd" $w; and set skip 1
                continue
        end
        if test -z "$cmd"
            set cmd $w
        else if test $nargs = 0; and contains -- $w (${p}_subs $cmd)
            set cmd "$cmd $w"
        else
            test $nargs = 0; and set first $w
            set nargs (math $nargs + 1)
        end
    end
    echo "cmd=$cmd"
    echo "nargs=$nargs"
    echo "first=$first"
end
function ${p}_needs_command
    contains -- cmd= (${p}_state)
end
function ${p}_is --argument-names want
    contains -- "cmd=$want" (${p}_state)
end
function ${p}_needs_sub --argument-names group
    set -l st (${p}_state)
    contains -- "cmd=$group" $st; and contains -- nargs=0 $st
end
function ${p}_arg --argument-names want n
    set -l st (${p}_state)
    contains -- "cmd=$want" $st; and contains -- "nargs=$n" $st
end
function ${p}_help_sub
    set -l st (${p}_state)
    contains -- cmd=help $st; and contains -- nargs=1 $st; or return 1
    ${p}_subs (string replace -r '^first=' '' -- $st[3])
end
complete -c pilotctl -f
`;
  for (const f of GLOBAL_FLAGS) {
    const v = flagValues(f);
    s += `complete -c pilotctl -l ${f.name}${fishValue(f, v)} -d ${fq(oneLine(f.description))}\n`;
  }
  for (const [w, d] of m.words) s += `complete -c pilotctl -n '${p}_needs_command' -a ${fq(w)} -d ${fq(oneLine(d))}\n`;
  for (const [g, subs] of m.subs) for (const [sub, d] of subs) s += `complete -c pilotctl -n '${p}_needs_sub ${g}' -a ${fq(sub)} -d ${fq(oneLine(d))}\n`;
  for (const [c, fs] of m.flags) {
    for (const f of fs) {
      s += `complete -c pilotctl -n ${fq(`${p}_is '${c}'`)} -l ${f.name}${fishValue(f, flagValues(f))} -d ${fq(oneLine(f.description))}\n`;
    }
  }
  for (const [c, as] of m.args) {
    as.forEach((v, i) => {
      if (v === null) return;
      const cond = fq(`${p}_arg '${c}' ${i}`);
      if (v === 'command') s += `complete -c pilotctl -n ${cond} -a ${fq(m.words.map((w) => w[0]).join(' '))}\n`;
      else if (v === 'subcommand') s += `complete -c pilotctl -n 'test (count (${p}_help_sub)) -gt 0' -a '(${p}_help_sub)'\n`;
      else if (v === 'file') s += `complete -c pilotctl -n ${cond} -F\n`;
      else if (v === 'dir') s += `complete -c pilotctl -n ${cond} -a '(__fish_complete_directories)'\n`;
      else s += `complete -c pilotctl -n ${cond} -a ${fq(v.words.join(' '))}\n`;
    });
  }
  return s;
}

export function completionScript(shell: Shell, commands: Command[], version: string): string {
  return shell === 'bash' ? bashScript(commands, version) : shell === 'zsh' ? zshScript(commands, version) : fishScript(commands, version);
}

/** The `completion` command; `commands()` is the full table (main.ts), read when it runs. */
export function completionCommand(commands: () => Command[], version: () => string = () => ''): Command {
  return defineCommand<Shell>({
    name: 'completion',
    group: 'Meta',
    summary: 'Print a shell completion script (bash, zsh or fish) for commands, subcommands and flags',
    args: [{ name: 'shell', required: true, description: 'bash, zsh or fish' }],
    flags: [],
    returns: 'shell, script (the text; without --json the script alone is printed)',
    errors: [],
    parse(a) {
      const s = a.positional[0]!;
      if (!(SHELLS as readonly string[]).includes(s)) {
        return err('invalid_argument', `unsupported shell '${s}'`, { hint: 'pilotctl completion bash | zsh | fish' });
      }
      return ok(s as Shell);
    },
    async run(_ctx, shell) {
      const script = completionScript(shell, commands(), version());
      return ok({ data: { shell, script }, text: script });
    },
  });
}
