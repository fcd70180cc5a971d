"""What bash, zsh and fish source, and how `runner` answers them.

Each script runs `runner` with `_RUNNER_COMPLETE=SHELL_complete` and the command line up to the cursor,
and reads one completion a line. The line, not the shell's own list of words, because bash splits words
at `:` and `=`, and pipeline names are full of colons (`custom:release`). `SHELL_source` prints the script.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, MutableMapping
from typing import Any

from typer._click.core import Command
from typer._click.shell_completion import (
    CompletionItem,
    ShellComplete,
    _resolve_context,
    _resolve_incomplete,
    split_arg_string,
)
from typer.core import TyperOption

from runner.completion import INSTRUCTION_VARIABLE, PROGRAM, SHELLS

LINE_VARIABLE = "_RUNNER_COMPLETE_LINE"  # the command line up to the cursor
WORD_VARIABLE = "_RUNNER_COMPLETE_WORD"  # bash: the part of the line bash replaces with a completion

ArgsRewrite = Callable[[list[str]], list[str]]

BASH_SCRIPT = r"""# bash completion for %(program)s: source this file, or write it to
# ~/.local/share/bash-completion/completions/%(program)s
%(function)s() {
    local response line
    response=$(env %(variable)s=bash_complete %(line)s="${COMP_LINE:0:COMP_POINT}" \
        %(word)s="${COMP_WORDS[COMP_CWORD]}" %(program)s 2>/dev/null) || return 0
    COMPREPLY=()
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        COMPREPLY+=("$line")
        # a folder is completed further, so no space after its slash
        if [[ $line == */ ]]; then compopt -o nospace 2>/dev/null; fi
    done <<<"$response"
    return 0
}
# -o nosort keeps the file's order of pipelines and steps; bash before 4.4 does not know it
complete -o nosort -F %(function)s %(program)s 2>/dev/null || complete -F %(function)s %(program)s
"""

ZSH_SCRIPT = r"""#compdef %(program)s
# zsh completion for %(program)s: write it to a file named _%(program)s in a folder of $fpath,
# or source it after compinit.
_%(program)s() {
    local -a response described folders
    local line value help
    response=("${(@f)$(env %(variable)s=zsh_complete %(line)s="${(j: :)words[1,CURRENT]}" \
        %(program)s 2>/dev/null)}")
    for line in $response; do
        [[ -n $line ]] || continue
        value=${line%%%%$'\t'*}
        help=${line#*$'\t'}
        if [[ $value == */ ]]; then
            folders+=("$value")
        elif [[ -n $help ]]; then
            described+=("${value//:/\\:}:$help")
        else
            described+=("${value//:/\\:}")
        fi
    done
    local found=1
    if (( $#described )); then _describe -V %(program)s described -U && found=0; fi
    # a folder is completed further, so no space after its slash
    if (( $#folders )); then compadd -U -V %(program)s-folders -S '' -a folders && found=0; fi
    return $found
}
# loaded from $fpath, this file is the body of _%(program)s; sourced, it registers the function
if [[ ${funcstack[1]-} == _%(program)s ]]; then
    _%(program)s "$@"
else
    compdef _%(program)s %(program)s
fi
"""

FISH_SCRIPT = r"""# fish completion for %(program)s: write it to ~/.config/fish/completions/%(program)s.fish
function %(function)s
    set -lx %(variable)s fish_complete
    set -lx %(line)s (commandline -cp | string collect)
    command %(program)s 2>/dev/null
end
# --keep-order: pipelines and steps in the file's order
complete --command %(program)s --no-files --keep-order --arguments '(%(function)s)'
"""

BASH_SAFE = re.compile(r"[^\w./:=@%+,~-]")  # what bash inserts as it is; the rest gets a backslash


class LineShell(ShellComplete):
    """A shell that sends the command line up to the cursor in `_RUNNER_COMPLETE_LINE`."""

    def __init__(
        self,
        cli: Command,
        ctx_args: MutableMapping[str, Any],
        prog_name: str,
        complete_var: str,
        rewrite_args: ArgsRewrite,
    ) -> None:
        super().__init__(cli, ctx_args, prog_name, complete_var)
        self.rewrite_args = rewrite_args
        self.token = ""  # the word under the cursor as the command line parses it, quotes removed

    def source_vars(self) -> dict[str, Any]:
        return {
            "function": self.func_name,
            "program": self.prog_name,
            "variable": self.complete_var,
            "line": LINE_VARIABLE,
            "word": WORD_VARIABLE,
        }

    def get_completion_args(self) -> tuple[list[str], str]:
        line = os.environ.get(LINE_VARIABLE, "")
        words = split_arg_string(line)
        in_a_word = bool(words) and bool(line) and not line[-1].isspace()
        incomplete = words.pop() if in_a_word else ""
        # the same rewriting `main` applies, so a line completes as it would run
        return self.rewrite_args(words[1:]), incomplete

    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        ctx = _resolve_context(self.cli, self.ctx_args, self.prog_name, args)
        completing, incomplete = _resolve_incomplete(ctx, args, incomplete)
        if isinstance(completing, TyperOption):
            # An option that lacks its value stops the parsing where it stands, and the arguments after
            # it, FILE among them, are never read: parse the line again with the value being typed.
            ctx = _resolve_context(self.cli, self.ctx_args, self.prog_name, [*args, incomplete])
        return completing.shell_complete(ctx, incomplete)

    def complete(self) -> str:
        args, self.token = self.get_completion_args()
        # `--pipeline=cus` completes the value after `=`; the shell replaces the whole word
        head = self.token.partition("=")[0] + "=" if self.token.startswith("-") and "=" in self.token else ""
        lines = []
        for item in self.get_completions(args, self.token):
            value = head + str(item.value)
            if "\n" in value or "\t" in value:  # one completion a line, value and help split by a tab
                continue
            help_text = " ".join((item.help or "").split())
            lines.append(self.format_completion(CompletionItem(value, help=help_text)))
        return "\n".join(lines)


class BashShell(LineShell):
    name = "bash"
    source_template = BASH_SCRIPT

    def format_completion(self, item: CompletionItem) -> str:
        value = str(item.value)
        # bash replaces its own last word, which starts after the last `:` or `=`; drop what comes before
        word = os.environ.get(WORD_VARIABLE, self.token)
        if word and self.token.endswith(word):
            value = value[len(self.token) - len(word) :]
        # inserted as typed: spaces, globs and braces in step and pipeline names must not split or expand
        return BASH_SAFE.sub(lambda match: "\\" + match.group(), value)


class ZshShell(LineShell):
    name = "zsh"
    source_template = ZSH_SCRIPT

    def format_completion(self, item: CompletionItem) -> str:
        return f"{item.value}\t{item.help or ''}"


class FishShell(LineShell):
    name = "fish"
    source_template = FISH_SCRIPT

    def format_completion(self, item: CompletionItem) -> str:
        return f"{item.value}\t{item.help}" if item.help else str(item.value)


SHELL_CLASSES: dict[str, type[LineShell]] = {shell.name: shell for shell in (BashShell, ZshShell, FishShell)}


def script(command: Command, shell: str) -> str:
    """The script `shell` sources to complete `runner`."""
    completer = SHELL_CLASSES[shell](command, {}, PROGRAM, INSTRUCTION_VARIABLE, lambda args: args)
    return completer.source()


def respond(command: Command, instruction: str, rewrite_args: ArgsRewrite) -> int:
    """Answer `_RUNNER_COMPLETE=SHELL_source|SHELL_complete`. Completing never writes to standard error:
    whatever it printed would land in the middle of the line being typed."""
    shell, _, action = instruction.partition("_")
    if shell not in SHELL_CLASSES or action not in ("source", "complete"):
        print(
            f"{INSTRUCTION_VARIABLE}={instruction!r} is not SHELL_source or SHELL_complete "
            f"for a SHELL of {', '.join(SHELLS)}",
            file=sys.stderr,
        )
        return 1
    completer = SHELL_CLASSES[shell](command, {}, PROGRAM, INSTRUCTION_VARIABLE, rewrite_args)
    if action == "source":
        sys.stdout.write(completer.source())
        return 0
    warnings.simplefilter("ignore")
    try:
        answer = completer.complete()
    except Exception:
        if os.environ.get("RUNNER_DEBUG"):
            traceback.print_exc()
        return 0
    if answer:
        sys.stdout.write(answer + "\n")
    return 0
