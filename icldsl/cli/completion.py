"""Shell completion scripts for bash, zsh and fish, written from the argparse parser, so
a verb or option added to `arguments` completes without touching this file.

Each script completes the verbs (and `cache`'s actions), the options of the verb being
typed, the values of options with fixed choices, and file names elsewhere.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

PROG = "icldsl"


@dataclass(frozen=True, slots=True)
class Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verb:
    """A verb (or `cache`'s action, whose path is `cache stats`): its options and its own verbs."""

    path: tuple[str, ...]
    help: str
    options: tuple[Option, ...]
    verbs: tuple["Verb", ...] = ()
    positional_choices: tuple[str, ...] = ()  # a positional argument of fixed values (`completion SHELL`)


def _short(text: str | None) -> str:
    """A help text's first clause, for a completion menu."""
    return re.split(r"[;(]", text or "", maxsplit=1)[0].strip()


def describe(parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help: str = "") -> Verb:
    options, verbs, choices = [], [], ()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            verbs = [describe(sub, (*path, name), helps.get(name, "")) for name, sub in action.choices.items()]
        elif action.option_strings:
            options.append(Option(tuple(action.option_strings), _short(action.help), action.nargs != 0,
                                  tuple(action.choices or ())))
        elif action.choices:
            choices = tuple(action.choices)
    return Verb(path, _short(help), tuple(options), tuple(verbs), choices)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](describe(parser))


def _walk(verb: Verb):
    yield verb
    for sub in verb.verbs:
        yield from _walk(sub)


# ---- bash ----------------------------------------------------------------------------------


def bash(top: Verb) -> str:
    """The words that are not options, in order, name the verb; then the cursor gets the
    verb's options, the choices of the option before it, its verbs or values, or (through
    `complete -o default`) file names."""
    cases, values = [], []
    for verb in _walk(top):
        key = " ".join(verb.path)
        opts = " ".join(f for o in verb.options for f in o.flags)
        names = " ".join([v.path[-1] for v in verb.verbs] + list(verb.positional_choices))
        cases.append(f'        "{key}") opts="{opts}" names="{names}" ;;')
        for option in verb.options:
            if option.takes_value:
                flags = "|".join(f'"{key} {flag}"' for flag in option.flags)
                reply = f'COMPREPLY=($(compgen -W "{" ".join(option.choices)}" -- "$cur")); ' if option.choices else ""
                values.append(f"        {flags}) {reply}return ;;")
    nested = " ".join(v.path[-1] for v in top.verbs if v.verbs)
    return "\n".join([
        f"# {PROG} completion for bash: eval \"$({PROG} completion bash)\"",
        f"_{PROG}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" path="" word i opts names',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        word="${COMP_WORDS[i]}"',
        '        case "$word" in -*) continue ;; esac',
        '        if [[ -z "$path" ]]; then path="$word"',
        f'        elif [[ " {nested} " == *" $path "* ]]; then path="$path $word"; break',
        "        else break; fi",
        "    done",
        '    case "$path $prev" in',
        *values,
        "    esac",
        '    case "$path" in',
        *cases,
        "        *) return ;;",
        "    esac",
        '    if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
        '    elif [[ -n "$names" ]]; then COMPREPLY=($(compgen -W "$names" -- "$cur")); fi',
        "}",
        f"complete -o default -F _{PROG} {PROG}",
        "",
    ])


# ---- zsh -----------------------------------------------------------------------------------


def _zsh_text(text: str) -> str:
    """Text inside a single-quoted _arguments spec: no brackets or colons to misread."""
    return text.replace("'", "'\\''").replace("[", "(").replace("]", ")").replace(":", "\\:")


def _zsh_options(verb: Verb) -> list[str]:
    specs = []
    for option in verb.options:
        exclusive = f"({' '.join(option.flags)})" if len(option.flags) > 1 else ""
        names = "{" + ",".join(option.flags) + "}" if len(option.flags) > 1 else option.flags[0]
        value = ""
        if option.choices:
            value = f":value:({' '.join(option.choices)})"
        elif option.takes_value:
            value = ":value:_files"
        specs.append(f"'{exclusive}'{names}'[{_zsh_text(option.help)}]{value}'" if exclusive
                     else f"'{names}[{_zsh_text(option.help)}]{value}'")
    return specs


def _zsh_function(verb: Verb) -> list[str]:
    name = "_" + "_".join((PROG, *verb.path))
    lines = [f"{name}() {{"]
    if verb.verbs:
        lines.append("    local -a verbs=(")
        lines += [f"        '{sub.path[-1]}:{_zsh_text(sub.help)}'" for sub in verb.verbs]
        lines += ["    )", "    local curcontext=\"$curcontext\" state line", "    _arguments -C \\"]
        lines += [f"        {spec} \\" for spec in _zsh_options(verb)]
        lines += ["        '1: :->verb' \\", "        '*:: :->args'",
                  "    case $state in",
                  "        verb) _describe 'verb' verbs ;;",
                  f"        args) (( $+functions[{name}_$words[1]] )) && {name}_$words[1] ;;",
                  "    esac"]
    else:
        rest = f"'1:value:({' '.join(verb.positional_choices)})'" if verb.positional_choices else "'*:file:_files'"
        lines.append("    _arguments \\")
        lines += [f"        {spec} \\" for spec in _zsh_options(verb)]
        lines.append(f"        {rest}")
    lines.append("}")
    return lines


def zsh(top: Verb) -> str:
    lines = [f"#compdef {PROG}", f"# {PROG} completion for zsh: eval \"$({PROG} completion zsh)\" after compinit,",
             f"# or save it as _{PROG} in a folder of $fpath."]
    for verb in _walk(top):
        lines += _zsh_function(verb)
    lines += [
        "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then",  # autoloaded from $fpath: complete now
        f'    _{PROG} "$@"',
        "else",
        f"    compdef _{PROG} {PROG}",
        "fi",
        "",
    ]
    return "\n".join(lines)


# ---- fish ----------------------------------------------------------------------------------


def _fish_text(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish(top: Verb) -> str:
    lines = [f"# {PROG} completion for fish: {PROG} completion fish > ~/.config/fish/completions/{PROG}.fish"]
    names = " ".join(v.path[-1] for v in top.verbs)
    for verb in _walk(top):
        if not verb.path:
            condition = "__fish_use_subcommand"
        else:
            siblings = " ".join(v.path[-1] for v in verb.verbs)
            condition = " ; and ".join(f"__fish_seen_subcommand_from {word}" for word in verb.path)
            if verb.verbs:
                condition += f" ; and not __fish_seen_subcommand_from {siblings}"
        if verb is top:
            condition_for_options = f"not __fish_seen_subcommand_from {names}"
        else:
            condition_for_options = " ; and ".join(f"__fish_seen_subcommand_from {word}" for word in verb.path)
        for sub in verb.verbs:
            lines.append(f"complete -c {PROG} -f -n {_fish_text(condition)} -a {sub.path[-1]} "
                         f"-d {_fish_text(sub.help)}")
        if verb.positional_choices:
            lines.append(f"complete -c {PROG} -f -n {_fish_text(condition_for_options)} "
                         f"-a {_fish_text(' '.join(verb.positional_choices))}")
        for option in verb.options:
            flags = " ".join(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}" for f in option.flags)
            value = f" -x -a {_fish_text(' '.join(option.choices))}" if option.choices else (
                " -r" if option.takes_value else "")
            lines.append(f"complete -c {PROG} -n {_fish_text(condition_for_options)} {flags}{value} "
                         f"-d {_fish_text(option.help)}")
    return "\n".join(lines) + "\n"
