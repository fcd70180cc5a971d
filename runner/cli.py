"""The command line. Each command is a thin call into `runner.commands`; errors become exit codes here."""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from runner import __version__
from runner.completion import INSTRUCTION_VARIABLE, SHELLS
from runner.completion.values import (
    complete_any_file,
    complete_folder,
    complete_format,
    complete_pipeline,
    complete_pipeline_file,
    complete_run,
    complete_shell,
    complete_step,
)
from runner.errors import ExitCode, InputError, RunnerError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Run container pipelines with a guaranteed finally, and leave nothing behind.",
)

NoColor = Annotated[bool, typer.Option("--no-color", help="Plain output without colour.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Show only failures and the summary line.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show more detail.")]
Format = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="Input format: native, bitbucket or kestra (default: detected).",
        autocompletion=complete_format,
    ),
]


PLAIN_WIDTH = 160  # not a terminal: lines are read by people and by grep, not wrapped at 80


def _console(no_color: bool, stderr: bool = False) -> Console:
    console = Console(no_color=no_color or None, highlight=False, stderr=stderr)
    if not console.is_terminal:
        console.width = PLAIN_WIDTH
        # a diagnostic is one line, `file:line:col: message`, whatever its length: never cut it for a pipe
        console.soft_wrap = True
    return console


def _errors() -> Console:
    from runner.render import error_console

    return error_console()


def _execute(action: Callable[[], int]) -> None:
    try:
        code = action()
    except InputError as exc:
        for problem in [exc, *exc.others]:
            _show(problem)
        code = ExitCode.INVALID_INPUT
    except RunnerError as exc:
        _show(exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except BrokenPipeError:
        # the reader of our output went away (`| head`): nothing is wrong, and nothing more can be said
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = ExitCode.BROKEN_PIPE
    except Exception:
        _errors().print(
            "[red]internal error[/red]: " + escape(traceback.format_exc().strip().splitlines()[-1])
        )
        if os.environ.get("RUNNER_DEBUG"):
            traceback.print_exc()
        else:
            _errors().print("  hint: run again with RUNNER_DEBUG=1 to see where it happened")
        code = ExitCode.STEP_FAILED
    raise typer.Exit(int(code))


def _refuse(message: str, hint: str | None = None) -> int:
    raise InputError(message, hint)


def _show(error: RunnerError) -> None:
    from runner.render import show_problem

    show_problem(_errors(), error)


def _version(value: bool) -> None:
    if value:
        print(f"runner {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="The engine: unix:///path, tcp://host:port, ssh://user@host, a socket path or a docker "
            "context name (default: runner.toml's engine, DOCKER_HOST, the current docker context, then "
            "the local Docker and Podman sockets).",
        ),
    ] = None,
) -> None:
    """Run container pipelines with a guaranteed finally, and leave nothing behind."""
    if engine:
        from runner.config import ENGINE_VARIABLE

        # the environment carries it to every engine client of this process and to the processes it starts
        os.environ[ENGINE_VARIABLE] = engine


Repeated = Annotated[list[str] | None, typer.Option()]
Flows = Annotated[
    list[Path] | None,
    typer.Option(
        "--flows",
        help="A folder of Kestra flows where subflows are found (repeatable).",
        autocompletion=complete_folder,
    ),
]
SkipUnsupported = Annotated[
    bool,
    typer.Option(
        "--skip-unsupported",
        help="Kestra tasks this tool cannot run (cloud, hosted services) are skipped instead of refused.",
    ),
]
OptionalFile = Annotated[
    Path | None,
    typer.Argument(
        help="The pipeline file (default: runner.yml or bitbucket-pipelines.yml here).",
        autocompletion=complete_pipeline_file,
    ),
]
PipelineName = Annotated[
    str | None,
    typer.Option(
        "--pipeline",
        "-p",
        help="default, branches:NAME, tags:NAME, pull-requests:NAME or custom:NAME.",
        autocompletion=complete_pipeline,
    ),
]
Branch = Annotated[str | None, typer.Option("--branch", help="Choose the pipeline for this branch.")]
Tag = Annotated[str | None, typer.Option("--tag", help="Choose the pipeline for this tag.")]


@app.command()
def run(
    file: OptionalFile = None,
    image: Annotated[
        list[str] | None,
        typer.Option("--image", help="Map an image to a local one: NAME=LOCAL (repeatable)."),
    ] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="Set KEY=VALUE in every step.")] = None,
    env_file: Annotated[
        list[Path] | None,
        typer.Option("--env-file", help="Read KEY=VALUE lines.", autocompletion=complete_any_file),
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", help="Like --env, and the value is masked in every log line."),
    ] = None,
    secret_file: Annotated[
        list[Path] | None,
        typer.Option("--secret-file", help="Read secret KEY=VALUE lines.", autocompletion=complete_any_file),
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="A custom pipeline's variable: NAME=VALUE (repeatable).")
    ] = None,
    flow_input: Annotated[
        list[str] | None, typer.Option("--input", help="A Kestra flow's input: NAME=VALUE (repeatable).")
    ] = None,
    pipeline: PipelineName = None,
    branch: Branch = None,
    tag: Tag = None,
    manual: Annotated[bool, typer.Option("--manual", help="Run manual steps without asking.")] = False,
    max_parallel: Annotated[int, typer.Option("--max-parallel", min=1, help="Parallel steps at once.")] = 4,
    strict: Annotated[
        bool, typer.Option("--strict", help="Treat warnings about the file as errors.")
    ] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep every container, network and volume.")] = False,
    bind: Annotated[
        bool, typer.Option("--bind", help="Bind-mount the pipeline's directory instead of copying it.")
    ] = False,
    step: Annotated[
        list[str] | None,
        typer.Option(
            "--step",
            "-s",
            help="Run only this step: a number or name as `runner list` shows it, or a glob (repeatable). "
            "Steps before it that are not run lend the artifacts and variables of their last local run.",
            autocompletion=complete_step,
        ),
    ] = None,
    no_final: Annotated[
        bool, typer.Option("--no-final", help="Do not run the final/finally steps (with --step or alone).")
    ] = False,
    flows: Flows = None,
    skip_unsupported: SkipUnsupported = False,
    trigger: Annotated[
        list[str] | None,
        typer.Option(
            "--trigger", help="What a Kestra trigger would set, as `trigger.KEY`: KEY=VALUE (repeatable)."
        ),
    ] = None,
    send_notifications: Annotated[
        bool,
        typer.Option(
            "--send-notifications", help="Send Kestra notifications (Slack, Teams, …); else they are shown."
        ),
    ] = False,
    no_ahead: Annotated[
        bool,
        typer.Option(
            "--no-ahead",
            help="Make each step's container only at its turn, with a network namespace of its own "
            "(slower: for comparing, or when a step must be alone on the engine).",
        ),
    ] = False,
    namespace_files: Annotated[
        Path | None,
        typer.Option(
            "--namespace-files",
            help="The folder of Kestra namespace files (default: the flow's folder).",
            autocompletion=complete_folder,
        ),
    ] = None,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help="Run on the Swarm cluster whose manager is the engine: as a job on a node Swarm chooses, "
            "finally guaranteed there; followed here unless --detach.",
        ),
    ] = False,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="With --cluster: print the run id and leave the run to the cluster."),
    ] = False,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            help="With --cluster: the registry the nodes pull from, HOST:PORT as they reach it "
            "(else `registry =` in runner.toml, or RUNNER_REGISTRY).",
        ),
    ] = None,
    allow_host_process: Annotated[
        bool,
        typer.Option(
            "--allow-host-process",
            help="Run the tasks of Kestra's Process task runner as processes of this machine, not in a "
            "container of their image.",
        ),
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            is_flag=False,
            flag_value="",
            metavar="[RUN]",
            help="Continue a run that stopped before a manual step (default: this file's newest), from that "
            "step, with what the steps before it left; final runs again.",
        ),
    ] = None,
    rerun_failed: Annotated[
        str | None,
        typer.Option(
            "--rerun-failed",
            is_flag=False,
            flag_value="",
            metavar="[RUN]",
            help="Run the failed and skipped steps of a finished run again (default: this file's newest "
            "failed run), with what the passed steps left; final runs again.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            "-n",
            help="Show what the run would do (steps, images, services, caches, artifacts, finally) and "
            "start nothing; exit 0 when it could start, 2 when the file is invalid.",
        ),
    ] = False,
    json_events: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Write every event as one JSON line on standard output (schema: runner/reports/"
            "events.schema.json); the summary goes to standard error. With --dry-run: the plan as JSON.",
        ),
    ] = False,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", metavar="FILE", help="Write a JUnit XML report of the run to FILE."),
    ] = None,
    format_name: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Run a pipeline file."""
    from runner.commands.run import RunRequest
    from runner.commands.run import run as run_command

    request = RunRequest(
        file=file,
        images=image or [],
        env=env or [],
        env_files=env_file or [],
        secrets=secret or [],
        secret_files=secret_file or [],
        variables=[*(var or []), *(flow_input or [])],
        format_name=format_name,
        pipeline=pipeline,
        branch=branch,
        tag=tag,
        manual=manual,
        max_parallel=max_parallel,
        strict=strict,
        keep=keep,
        bind=bind,
        quiet=quiet,
        verbose=verbose,
        steps=step or [],
        no_final=no_final,
        flow_dirs=flows or [],
        skip_unsupported=skip_unsupported,
        trigger=trigger or [],
        send_notifications=send_notifications,
        ahead=not no_ahead,
        namespace_files=namespace_files,
        allow_host_process=allow_host_process,
        resume=resume,
        rerun_failed=rerun_failed,
        json_events=json_events,
        junit=junit,
    )
    console = _console(no_color, stderr=json_events)
    if dry_run:
        from runner.commands.plan import show_plan

        if cluster or resume is not None or rerun_failed is not None:
            _execute(
                lambda: _refuse(
                    "--dry-run shows a local run from its file",
                    "leave out --cluster, --resume and --rerun-failed",
                )
            )
        _execute(lambda: show_plan(_console(no_color), request))
    if detach and not cluster:
        _execute(lambda: _refuse("--detach is for cluster runs", "add --cluster"))
    if cluster:
        from runner.commands.cluster import run_on_cluster

        if resume is not None or rerun_failed is not None or bind or keep or json_events or junit:
            local_only = "--resume, --rerun-failed, --bind, --keep, --json and --junit"
            _execute(lambda: _refuse(f"{local_only} are for local runs"))
        _execute(lambda: run_on_cluster(console, request, registry, detach))
    _execute(lambda: run_command(console, request))


@app.command("list")
def list_pipelines(
    file: OptionalFile = None,
    pipeline: PipelineName = None,
    branch: Branch = None,
    tag: Tag = None,
    var: Repeated = None,
    flow_input: Annotated[list[str] | None, typer.Option("--input", help="A flow input: NAME=VALUE.")] = None,
    format_name: Format = None,
    as_json: Annotated[bool, typer.Option("--json", help="The pipelines and their steps as JSON.")] = False,
    no_color: NoColor = False,
) -> None:
    """List a file's pipelines and their steps, and which one `run` would choose."""
    from runner.commands.listing import list_pipelines as list_command

    variables = [*(var or []), *(flow_input or [])]
    console = _console(no_color)
    _execute(lambda: list_command(console, file, format_name, pipeline, branch, tag, variables, as_json))


@app.command()
def validate(
    file: OptionalFile = None,
    pipeline: PipelineName = None,
    branch: Branch = None,
    tag: Tag = None,
    var: Repeated = None,
    flow_input: Annotated[list[str] | None, typer.Option("--input", help="A flow input: NAME=VALUE.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    skip_unsupported: SkipUnsupported = False,
    flows: Flows = None,
    format_name: Format = None,
    no_color: NoColor = False,
) -> None:
    """Check a pipeline file without running it (every pipeline of a Bitbucket file)."""
    from runner.commands.validate import validate as validate_command

    _execute(
        lambda: validate_command(
            _console(no_color),
            file,
            format_name,
            pipeline,
            branch,
            tag,
            [*(var or []), *(flow_input or [])],
            strict,
            skip_unsupported,
            tuple(flows or []),
        )
    )


@app.command()
def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed.")] = False,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Only runs older than this, e.g. 1h.")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Also runs whose runner still looks alive.")
    ] = False,
    caches: Annotated[
        bool, typer.Option("--caches", help="Also remove the caches kept between runs.")
    ] = False,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Resources of any tool with this label: KEY=VALUE or KEY (repeatable)."),
    ] = None,
    compose: Annotated[
        list[str] | None, typer.Option("--compose", help="Resources of this docker compose project.")
    ] = None,
    exited: Annotated[bool, typer.Option("--exited", help="Only containers that are not running.")] = False,
    logs: Annotated[
        bool,
        typer.Option(
            "--logs",
            help="Also prune the logs of past runs: those older than [logs] keep (or --older-than), then "
            "the oldest beyond [logs] max_size of runner.toml (default 30d and 1GB).",
        ),
    ] = False,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster", help="The Swarm cluster the engine manages: the services of runs that ended."
        ),
    ] = False,
    no_color: NoColor = False,
) -> None:
    """Remove leaked containers, networks and volumes: those of dead runs, or any tool's with --label or
    --compose. Nothing that matches no filter is ever touched."""
    if cluster:
        from runner.commands.cluster import cleanup_cluster

        _execute(lambda: cleanup_cluster(_console(no_color), dry_run, run_id, everything))
    from runner.commands.cleanup import CleanupRequest
    from runner.commands.cleanup import cleanup as cleanup_command

    request = CleanupRequest(
        dry_run=dry_run,
        run_id=run_id,
        older_than=older_than,
        everything=everything,
        caches=caches,
        labels=label or [],
        compose=compose or [],
        exited=exited,
        logs=logs,
    )
    _execute(lambda: cleanup_command(_console(no_color), request))


@app.command()
def ps(
    cluster: Annotated[
        bool,
        typer.Option("--cluster", help="List the runs of the Swarm cluster whose manager is the engine."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The runs and their resources as JSON.")] = False,
    no_color: NoColor = False,
) -> None:
    """List live and leaked runs with their resources (with --cluster, the cluster's runs)."""
    if cluster:
        from runner.commands.cluster import ps_cluster

        if as_json:
            _execute(lambda: _refuse("--json lists the runs of this engine", "leave out --cluster"))
        _execute(lambda: ps_cluster(_console(no_color)))
    from runner.commands.ps import ps as ps_command

    _execute(lambda: ps_command(_console(no_color), as_json))


ClusterRunId = Annotated[str, typer.Argument(metavar="RUN", help="The run's id (`runner ps --cluster`).")]


@app.command()
def logs(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[RUN|FILE]",
            help="A run's id (or its start), a pipeline file (its newest run), or a step of the newest run "
            "(default: the newest run's steps).",
            autocompletion=complete_run,
        ),
    ] = None,
    step: Annotated[
        str | None, typer.Argument(metavar="[STEP]", help="This step's log (its id or name).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing as the run goes on, until it ends.")
    ] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", "-n", min=0, help="Only the last N lines (then follow, with -f).")
    ] = None,
    cluster: Annotated[
        bool, typer.Option("--cluster", help="A run of the Swarm cluster (`runner ps --cluster`).")
    ] = False,
    no_color: NoColor = False,
) -> None:
    """Print a past or running run's output: its steps, one step's log, or everything as it comes."""
    from runner.commands.cluster import logs as cluster_logs
    from runner.commands.logs import LogsRequest, show_logs

    console = _console(no_color)

    def action() -> int:
        if not cluster:
            try:
                return show_logs(console, LogsRequest(target, step, follow, tail))
            except LookupError:
                pass  # no local run so named: a cluster run's id
        if target is None:
            raise InputError("a cluster run is named by its id", "runner ps --cluster lists them")
        return cluster_logs(console, target, step, follow)

    _execute(action)


@app.command()
def report(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[RUN|FILE]",
            help="A run's id (or its start), or a pipeline file (default: the newest run).",
            autocompletion=complete_run,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the page (default: runner-report-RUN.html here; - for stdout).",
        ),
    ] = None,
    no_color: NoColor = False,
) -> None:
    """Write one HTML page with a picture of a run: its steps on a timeline, services, finally, the
    resources it made and removed, and each step's log. It opens in any browser, with no network."""
    from runner.commands.report import write_report

    _execute(lambda: write_report(_console(no_color), target, output))


@app.command()
def cancel(
    run_id: Annotated[
        str, typer.Argument(metavar="RUN", help="The run's id, as `runner ps --cluster` shows it.")
    ],
    no_color: NoColor = False,
) -> None:
    """Cancel a cluster run: its running step stops, its finally runs, then what it made is removed."""
    from runner.commands.cluster import cancel as cancel_command

    _execute(lambda: cancel_command(_console(no_color), run_id))


@app.command()
def doctor(no_color: NoColor = False) -> None:
    """Say which engine a run would use and whether everything it needs works, with a hint for each
    problem; exit 0 only when a run would work."""
    from runner.commands.doctor import doctor as doctor_command

    _execute(lambda: doctor_command(_console(no_color)))


@app.command()
def completion(
    shell: Annotated[
        str | None,
        typer.Argument(
            metavar="SHELL",
            help="bash, zsh or fish (default: the shell $SHELL names).",
            autocompletion=complete_shell,
        ),
    ] = None,
) -> None:
    """Print the script that makes a shell complete runner's commands, options, files, pipelines and steps.

    Install it once, then open a new shell:

    bash: runner completion bash > ~/.local/share/bash-completion/completions/runner
    (needs the bash-completion package; else add `source <(runner completion bash)` to ~/.bashrc)

    zsh: runner completion zsh > ~/.zfunc/_runner
    (with `fpath=(~/.zfunc $fpath)` before `compinit` in ~/.zshrc)

    fish: runner completion fish > ~/.config/fish/completions/runner.fish
    """

    def action() -> int:
        from runner.completion.shells import script

        chosen = shell or Path(os.environ.get("SHELL", "")).name
        if chosen not in SHELLS:
            hint = "runner completion " + ", ".join(SHELLS[:-1]) + " or " + SHELLS[-1]
            if shell:
                raise InputError(f"no completion for the shell {shell!r}", hint)
            where = f"$SHELL is {os.environ['SHELL']!r}" if os.environ.get("SHELL") else "$SHELL is not set"
            raise InputError(f"no shell named, and {where}", hint)
        sys.stdout.write(script(typer.main.get_command(app), chosen))
        return 0

    _execute(action)


OPTIONAL_RUN = ("--resume", "--rerun-failed")
RUN_ID = re.compile(r"[0-9a-f]{1,32}")


def optional_values(argv: list[str]) -> list[str]:
    """`--resume [RUN]`: the command-line library has no option whose value may be left out, so a bare
    `--resume` becomes `--resume=` here. What follows it is its value only when it looks like a run id:
    `--resume FILE` keeps FILE the file."""
    out: list[str] = []
    for index, arg in enumerate(argv):
        following = argv[index + 1] if index + 1 < len(argv) else None
        if arg in OPTIONAL_RUN and (following is None or not RUN_ID.fullmatch(following)):
            arg += "="
        out.append(arg)
    return out


kv_app = typer.Typer(
    no_args_is_help=True, help="Kestra's key-value store, kept on this machine (read by kv())."
)
app.add_typer(kv_app, name="kv")


@kv_app.command("set")
def kv_set(
    namespace: Annotated[str, typer.Argument(help="The flow's namespace, e.g. company.team.")],
    key: Annotated[str, typer.Argument()],
    value: Annotated[str, typer.Argument()],
    as_json: Annotated[
        bool, typer.Option("--json", help="The value is JSON (a number, a list, a map).")
    ] = False,
) -> None:
    """Set a key."""
    import json

    from runner import kvstore

    def action() -> int:
        try:
            parsed = json.loads(value) if as_json else value
        except ValueError as exc:
            raise InputError(
                f"--json: {value!r} is not JSON: {exc}", "quote strings, or leave --json out"
            ) from None
        kvstore.put(namespace, key, parsed)
        return 0

    _execute(action)


@kv_app.command("get")
def kv_get(namespace: Annotated[str, typer.Argument()], key: Annotated[str, typer.Argument()]) -> None:
    """Print a key's value (JSON for anything but a string); exit 2 when it is not set."""
    import json

    from runner import kvstore

    def action() -> int:
        try:
            value = kvstore.get(namespace, key)
        except KeyError:
            raise InputError(
                f"no key '{key}' in {namespace}", f"set it with: runner kv set {namespace} {key} VALUE"
            ) from None
        print(value if isinstance(value, str) else json.dumps(value))
        return 0

    _execute(action)


@kv_app.command("list")
def kv_list(namespace: Annotated[str, typer.Argument()]) -> None:
    """Print the keys of a namespace."""
    from runner import kvstore

    def action() -> int:
        for name in kvstore.keys(namespace):
            print(name)
        return 0

    _execute(action)


@kv_app.command("delete")
def kv_delete(namespace: Annotated[str, typer.Argument()], key: Annotated[str, typer.Argument()]) -> None:
    """Delete a key (exit 0 whether it was there or not)."""
    from runner import kvstore

    _execute(lambda: (kvstore.delete(namespace, key), 0)[1])


def main() -> None:
    instruction = os.environ.get(INSTRUCTION_VARIABLE)
    if instruction:
        # answered here, not by the library: its own answer knows neither these scripts nor `optional_values`
        from runner.completion.shells import respond

        sys.exit(respond(typer.main.get_command(app), instruction, optional_values))
    app(args=optional_values(sys.argv[1:]), prog_name="runner")
    sys.exit(0)
