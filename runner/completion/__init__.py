"""Shell completion: the scripts bash, zsh and fish source, and the values the command line completes.

A shell that completes `runner` runs it again with `_RUNNER_COMPLETE` set: `runner.cli.main` answers that
before anything else, so completing a command or an option costs no more than starting the CLI. This
module imports nothing, so that checking for the variable costs nothing either."""

SHELLS = ("bash", "zsh", "fish")
PROGRAM = "runner"
INSTRUCTION_VARIABLE = "_RUNNER_COMPLETE"  # SHELL_source prints the script, SHELL_complete completes
