"""Shell completion as bash, zsh and fish do it. Each shell loads what `runner completion SHELL` prints, a
command line is typed in a folder holding a pipeline file, and what the shell received is compared with
what it must be. bash and zsh run interactively on a pseudo-terminal, so that their own line editors split
the words and insert the completion; fish answers `complete -C` without a terminal."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
SHELLS = ("bash", "zsh", "fish")
LINE_EDITING_SHELLS = ("bash", "zsh")
WAIT = 30.0  # seconds a shell may take to start, or to complete once
PROMPT = "ready> "

BITBUCKET = """
    image: atlassian/default-image:4
    pipelines:
      default:
        - step:
            name: Build
            script: [make]
        - parallel:
            - step: {name: Unit tests, script: [make test]}
            - step: {name: Lint, script: [make lint]}
      branches:
        main:
          - step: {name: Deploy, script: [make deploy]}
        'feature/*':
          - step: {name: Preview, script: [make preview]}
      custom:
        release:
          - variables:
              - name: VERSION
          - step: {name: Publish, script: [make publish]}
          - step: {name: Announce, script: [make announce]}
        nightly:
          - step: {name: Nightly build, script: [make nightly]}
"""
PIPELINES = ["default", "branches:main", "branches:feature/*", "custom:release", "custom:nightly"]

NATIVE = """
    name: demo
    image: busybox
    steps:
      - {id: build, script: make}
      - {id: check, name: run checks, script: make check}
"""

COMMANDS = {
    "run",
    "list",
    "validate",
    "cleanup",
    "ps",
    "logs",
    "cancel",
    "doctor",
    "completion",
    "kv",
    "report",
}


@dataclass(frozen=True)
class Completion:
    candidates: list[str]  # what the shell received, as it would insert them, in its order
    words: list[str] | None  # bash, zsh: the line's words once the shell inserted what it could


@pytest.fixture(scope="session")
def shells_installed() -> None:
    done = subprocess.run(
        ["bash", str(CHECKOUT / "scripts/shells.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=CHECKOUT,
    )
    if done.returncode != 0:
        message = f"scripts/shells.sh failed:\n{done.stderr[-3000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _imports_this_checkout(python: Path, env: dict[str, str], cwd: Path) -> bool:
    # -P: like the entry point's script, whose own folder is first on the path, not the working directory
    done = subprocess.run(
        [str(python), "-P", "-c", "import runner; print(runner.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    return done.returncode == 0 and Path(done.stdout.strip()) == CHECKOUT / "runner" / "__init__.py"


@pytest.fixture(scope="session")
def shell_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the shells: a `runner` first on PATH that runs this checkout's code, a home of
    their own (fish writes there), and nothing from the user's line-editor set-up."""
    folder = tmp_path_factory.mktemp("completion-home")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("EDITOR", "VISUAL", "HISTFILE", "ZDOTDIR", "BASH_ENV", "ENV")
        and not key.startswith("_RUNNER_COMPLETE")
    }
    env.update(HOME=str(folder), TERM="dumb", INPUTRC="/dev/null", XDG_CONFIG_HOME=str(folder / ".config"))
    env["XDG_DATA_HOME"] = str(folder / ".local/share")
    installed = Path(sys.executable).parent / "runner"
    # the installed entry point, as users run it, when it runs this checkout: an editable install of this
    # checkout (CI), or this checkout first on PYTHONPATH; an install of another checkout would test that
    if installed.is_file() and _imports_this_checkout(Path(sys.executable), env, folder):
        (bin_dir / "runner").symlink_to(installed)
    else:
        wrapper = bin_dir / "runner"
        wrapper.write_text(
            "#!/bin/sh\n"
            f'PYTHONPATH="{CHECKOUT}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" -m runner "$@"\n'
        )
        wrapper.chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


class Terminal:
    """An interactive shell on a pseudo-terminal, typed into as a person types; its output is only kept
    for the message of a failure, and drained so that the shell never blocks writing it."""

    ROWS, COLUMNS = 50, 200  # room for every listing, so that zsh asks nothing before showing one

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", self.ROWS, self.COLUMNS, 0, 0))
        self.process = subprocess.Popen(
            argv, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=cwd, start_new_session=True
        )
        os.close(follower)
        self.screen = b""

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not done():
            if time.monotonic() > deadline or self.process.poll() is not None:
                screen = self.screen.decode(errors="replace")[-3000:]
                raise AssertionError(f"{what}: not within {WAIT:.0f}s; the screen:\n{screen}")
            readable, _, _ = select.select([self.master], [], [], 0.05)
            if readable:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:  # the shell is gone: the next turn reports it
                    continue

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the session it leads: the shell and its children
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        os.close(self.master)


def _bash_rc(script: Path, reply: Path) -> str:
    # the function the script registers is wrapped, to write down the COMPREPLY it leaves to the line editor
    return textwrap.dedent(
        f"""
        PS1='{PROMPT}'
        source {script}
        read -r -a registration <<<"$(complete -p runner)"
        for i in "${{!registration[@]}}"; do
            if [[ ${{registration[i]}} == -F ]]; then
                under_test=${{registration[i+1]}}
                registration[i+1]=capture
            fi
        done
        capture() {{
            "$under_test" "$@"
            printf '%s\\n' "${{COMPREPLY[@]}}" >{reply}.part && mv {reply}.part {reply}
        }}
        "${{registration[@]}}"
        """
    )


def _zsh_rc(functions: Path, reply: Path) -> str:
    # the completion is loaded as users install it, from a file `_runner` on fpath; compadd is wrapped to
    # write down the matches the completion function adds, as zsh would insert them
    return textwrap.dedent(
        f"""
        PS1='{PROMPT}'
        fpath=({functions} $fpath)
        autoload -Uz compinit && compinit -u -D
        compadd() {{
            if (( ${{@[(I)-[OAD]*]}} )); then builtin compadd "$@"; return; fi  # asks, does not add
            local -a added
            builtin compadd -A added "$@"
            print -rl -- $added >>{reply}.part
            builtin compadd "$@"
        }}
        completion_done() {{ touch {reply}.part && mv {reply}.part {reply} }}
        comppostfuncs=(completion_done)
        """
    )


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def fish_answers(script: Path, line: str, folder: Path, env: dict[str, str]) -> list[str]:
    """What fish offers for `line`: a completion a line, its description after a tab."""
    done = subprocess.run(
        ["fish", "--no-config", "-c", "source $argv[1]; complete -C $argv[2]", str(script), line],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=WAIT,
        check=True,
    )
    assert done.stderr == ""
    return done.stdout.splitlines()


@pytest.fixture(scope="session")
def scripts(
    shells_installed: None, shell_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """What `runner completion SHELL` prints, in a file each, named as the install instructions say."""
    written = {}
    for shell in SHELLS:
        folder = tmp_path_factory.mktemp(f"completion-{shell}")
        printed = subprocess.run(
            ["runner", "completion", shell], capture_output=True, text=True, env=shell_env, check=True
        )
        written[shell] = folder / {"bash": "runner", "zsh": "_runner", "fish": "runner.fish"}[shell]
        written[shell].write_text(printed.stdout)
    return written


def complete(shell: str, script: Path, line: str, folder: Path, env: dict[str, str]) -> Completion:
    """Type `line` in `folder` and press Tab once."""
    scratch = folder.parent / f"{folder.name}-{shell}"
    scratch.mkdir(exist_ok=True)
    reply, typed = scratch / "reply", scratch / "typed"
    for stale in (reply, typed):
        stale.unlink(missing_ok=True)
    if shell == "fish":
        return Completion([answer.split("\t")[0] for answer in fish_answers(script, line, folder, env)], None)
    rc = scratch / "rc"
    if shell == "bash":
        rc.write_text(_bash_rc(script, reply))
        argv = ["bash", "--noprofile", "--rcfile", str(rc), "-i"]
    else:
        (scratch / ".zshrc").write_text(_zsh_rc(script.parent, reply))
        env = {**env, "ZDOTDIR": str(scratch)}
        argv = ["zsh", "-i"]
    terminal = Terminal(argv, env, folder)
    try:
        terminal.wait_until(lambda: PROMPT.encode() in terminal.screen, f"{shell} showing its prompt")
        terminal.type(line + "\t")
        terminal.wait_until(reply.exists, f"{shell} completing {line!r}")
        # the line as the shell left it, word by word: to its start, `printf`; to its end, a redirection
        terminal.type(f"\x01printf '%s\\n' \x05 >{typed}.part; mv {typed}.part {typed}\n")
        terminal.wait_until(typed.exists, f"{shell} running the completed line")
        return Completion(_lines(reply), _lines(typed))
    finally:
        terminal.close()


@pytest.fixture
def here(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


@pytest.fixture
def bitbucket_here(here: Path) -> Path:
    write(here, "bitbucket-pipelines.yml", BITBUCKET)
    return here


Complete = Callable[[str, str, Path], Completion]


@pytest.fixture
def completing(scripts: dict[str, Path], shell_env: dict[str, str]) -> Complete:
    def run(shell: str, line: str, folder: Path) -> Completion:
        return complete(shell, scripts[shell], line, folder, shell_env)

    return run


def bash_or_zsh_quoted(shell: str, values: list[str]) -> list[str]:
    """What bash's and zsh's line editors insert for these values: `*` and spaces stay literal."""
    if shell == "fish":
        return values
    return [value.replace("*", "\\*").replace(" ", "\\ ") for value in values]


@pytest.mark.parametrize("shell", SHELLS)
def test_command_names(completing: Complete, bitbucket_here: Path, shell: str) -> None:
    assert set(completing(shell, "runner ", bitbucket_here).candidates) == COMMANDS
    assert completing(shell, "runner ru", bitbucket_here).candidates == ["run"]


@pytest.mark.parametrize("shell", LINE_EDITING_SHELLS)
def test_a_unique_command_is_inserted(completing: Complete, bitbucket_here: Path, shell: str) -> None:
    assert completing(shell, "runner va", bitbucket_here).words == ["runner", "validate"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("runner run --pi", ["--pipeline"]),
        ("runner cleanup --dry", ["--dry-run"]),
        ("runner validate --format ", ["native", "bitbucket", "kestra"]),
        ("runner completion ", ["bash", "zsh", "fish"]),
        ("runner kv ", ["set", "get", "list", "delete"]),
    ],
)
def test_options_and_fixed_values(
    completing: Complete, bitbucket_here: Path, shell: str, line: str, expected: list[str]
) -> None:
    assert completing(shell, line, bitbucket_here).candidates == expected


@pytest.mark.parametrize("shell", SHELLS)
def test_pipeline_names_of_the_file_here(completing: Complete, bitbucket_here: Path, shell: str) -> None:
    got = completing(shell, "runner run --pipeline ", bitbucket_here).candidates
    assert got == bash_or_zsh_quoted(shell, PIPELINES)
    got = completing(shell, "runner list -p cu", bitbucket_here).candidates
    assert got == ["custom:release", "custom:nightly"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("typed", "inserted"),
    [
        # bash splits its words at `:` and `=`: the completion still ends up whole
        ("--pipeline custom:rel", ["--pipeline", "custom:release"]),
        ("--pipeline=custom:n", ["--pipeline=custom:nightly"]),
        ("-p branches:fea", ["-p", "branches:feature/*"]),  # a glob, inserted quoted, read back as typed
        ("--format=b", ["--format=bitbucket"]),
    ],
)
def test_a_value_is_inserted_whole(
    completing: Complete, bitbucket_here: Path, shell: str, typed: str, inserted: list[str]
) -> None:
    completion = completing(shell, f"runner run {typed}", bitbucket_here)
    if shell == "fish":  # fish replaces the whole word with its one candidate
        assert completion.candidates == [inserted[-1]]
    else:
        assert completion.words == ["runner", "run", *inserted]


@pytest.mark.parametrize("shell", SHELLS)
def test_steps_of_the_pipeline_run_would_choose(
    completing: Complete, bitbucket_here: Path, shell: str
) -> None:
    got = completing(shell, "runner run --step ", bitbucket_here).candidates
    assert got == bash_or_zsh_quoted(shell, ["Build", "Unit tests", "Lint"])


@pytest.mark.parametrize("shell", SHELLS)
def test_steps_of_the_pipeline_typed_before(completing: Complete, bitbucket_here: Path, shell: str) -> None:
    assert completing(shell, "runner run -p custom:release -s ", bitbucket_here).candidates == [
        "Publish",
        "Announce",
    ]
    assert completing(shell, "runner run --branch main -s ", bitbucket_here).candidates == ["Deploy"]


@pytest.mark.parametrize("shell", SHELLS)
def test_step_numbers_once_a_digit_is_typed(completing: Complete, bitbucket_here: Path, shell: str) -> None:
    assert completing(shell, "runner run -s 3", bitbucket_here).candidates == ["3"]


def test_fish_shows_the_step_a_number_stands_for(
    scripts: dict[str, Path], shell_env: dict[str, str], bitbucket_here: Path
) -> None:
    script = scripts["fish"]
    assert fish_answers(script, "runner run -s 2", bitbucket_here, shell_env) == ["2\tUnit tests"]
    assert fish_answers(script, "runner ru", bitbucket_here, shell_env) == ["run\tRun a pipeline file."]


@pytest.mark.parametrize("shell", LINE_EDITING_SHELLS)
def test_a_step_name_with_a_space_is_inserted_as_one_word(
    completing: Complete, bitbucket_here: Path, shell: str
) -> None:
    got = completing(shell, "runner run -s Un", bitbucket_here).words
    assert got == ["runner", "run", "-s", "Unit tests"]


@pytest.mark.parametrize("shell", SHELLS)
def test_the_file_argument_completes_pipeline_files_and_folders(
    completing: Complete, bitbucket_here: Path, shell: str
) -> None:
    write(bitbucket_here, "other.yaml", NATIVE)
    write(bitbucket_here, "notes.txt", "not a pipeline\n")
    write(bitbucket_here, "flows/runner.yml", NATIVE)
    write(bitbucket_here, ".hidden/runner.yml", NATIVE)
    got = completing(shell, "runner run ", bitbucket_here).candidates
    assert sorted(got) == ["bitbucket-pipelines.yml", "flows/", "other.yaml"]
    assert completing(shell, "runner validate flows/", bitbucket_here).candidates == ["flows/runner.yml"]


@pytest.mark.parametrize("shell", SHELLS)
def test_the_file_typed_is_the_one_completed(completing: Complete, bitbucket_here: Path, shell: str) -> None:
    write(bitbucket_here, "flows/runner.yml", NATIVE)
    assert completing(shell, "runner run flows/runner.yml -p ", bitbucket_here).candidates == ["demo"]
    got = completing(shell, "runner run flows/runner.yml --step ", bitbucket_here).candidates
    assert got == bash_or_zsh_quoted(shell, ["build", "run checks"])


@pytest.mark.parametrize("shell", SHELLS)
def test_a_runner_yml_here(completing: Complete, here: Path, shell: str) -> None:
    write(here, "runner.yml", NATIVE)
    assert completing(shell, "runner run --pipeline ", here).candidates == ["demo"]
    assert completing(shell, "runner run -s r", here).candidates == bash_or_zsh_quoted(shell, ["run checks"])


BROKEN = {
    "not yaml": "pipelines: [\n",
    "not a pipeline file": "pipelines:\n  default: 42\n",
}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_a_file_that_does_not_load_completes_to_nothing(
    completing: Complete, here: Path, shell: str, text: str
) -> None:
    write(here, "bitbucket-pipelines.yml", text)
    assert completing(shell, "runner run --pipeline ", here).candidates == []
    assert completing(shell, "runner run -s ", here).candidates == []


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_a_file_that_does_not_load_writes_nothing(
    shell_env: dict[str, str], here: Path, shell: str, text: str
) -> None:
    """What the shell is given, before its script throws away standard error."""
    write(here, "bitbucket-pipelines.yml", text)
    for line in ("runner run --pipeline ", "runner run --step ", "runner run -p default -s "):
        done = subprocess.run(
            ["runner"],
            env={**shell_env, "_RUNNER_COMPLETE": f"{shell}_complete", "_RUNNER_COMPLETE_LINE": line},
            cwd=here,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


REGISTRATION = {  # the line of each script that ties its function to the command
    "bash": "complete -o nosort -F _runner_completion runner 2>/dev/null"
    " || complete -F _runner_completion runner",
    "zsh": "    compdef _runner runner",
    "fish": "complete --command runner --no-files --keep-order --arguments '(_runner_completion)'",
}


@pytest.mark.parametrize("shell", SHELLS)
def test_the_script_printed_is_the_one_the_variable_asks_for(
    shell_env: dict[str, str], here: Path, shell: str
) -> None:
    def runner(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runner", *args], env={**shell_env, **env}, capture_output=True, text=True, check=False
        )

    named, detected = runner("completion", shell), runner("completion", SHELL=f"/usr/bin/{shell}")
    sourced = runner(_RUNNER_COMPLETE=f"{shell}_source")
    assert named.returncode == detected.returncode == sourced.returncode == 0
    assert named.stdout == detected.stdout == sourced.stdout
    assert REGISTRATION[shell] in named.stdout.splitlines()


def test_an_unknown_shell_is_exit_2_with_a_hint(shell_env: dict[str, str]) -> None:
    def runner(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runner", *args], env={**shell_env, **env}, capture_output=True, text=True, check=False
        )

    hint = "  hint: runner completion bash, zsh or fish"
    named = runner("completion", "tcsh")
    assert (named.returncode, named.stdout) == (2, "")
    assert named.stderr.splitlines() == ["error: no completion for the shell 'tcsh'", hint]
    detected = runner("completion", SHELL="/bin/tcsh")
    assert (detected.returncode, detected.stdout) == (2, "")
    assert detected.stderr.splitlines() == ["error: no shell named, and $SHELL is '/bin/tcsh'", hint]
    unset = subprocess.run(
        ["runner", "completion"],
        env={key: value for key, value in shell_env.items() if key != "SHELL"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (unset.returncode, unset.stdout) == (2, "")
    assert unset.stderr.splitlines() == ["error: no shell named, and $SHELL is not set", hint]


def test_completing_a_command_loads_no_pipeline_format(shell_env: dict[str, str], here: Path) -> None:
    """Completing what needs no file costs what starting the CLI costs: the formats are not imported."""
    write(here, "bitbucket-pipelines.yml", BITBUCKET)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner"],
        env={
            **shell_env,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), shell_env.get("PYTHONPATH")])),
            "_RUNNER_COMPLETE": "bash_complete",
            "_RUNNER_COMPLETE_LINE": "runner run --pi",
        },
        cwd=here,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "--pipeline\n")
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "runner.cli" in imported
    assert not {name for name in imported if name.startswith(("runner.formats", "runner.engine"))}


def test_logs_completes_this_machines_run_ids_and_pipeline_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.completion.values import complete_run
    from runner.teardown.ledger import Ledger

    state = tmp_path / "state"
    monkeypatch.setenv("RUNNER_STATE_DIR", str(state))
    monkeypatch.chdir(tmp_path)
    Ledger(state).start_run("0123456789", "build", "x.yml", "owner")
    Ledger(state).end_run("0123456789", "failed", 1)
    (tmp_path / "bitbucket-pipelines.yml").write_text("pipelines: {}\n", encoding="utf-8")
    assert complete_run("") == [
        ("0123456789", "build: failed"),
        ("bitbucket-pipelines.yml", ""),
        ("state/", ""),  # folders, to complete a file in them
    ]
