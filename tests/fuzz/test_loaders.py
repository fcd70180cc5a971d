"""The three loaders under hostile input: whatever the bytes, a pipeline comes out or an InputError with a
position does; never another exception. `make fuzz` runs 10,000 cases per test, the suite fewer
(FUZZ_EXAMPLES)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import InputError
from runner.formats import load_pipeline
from runner.formats.options import LoadOptions
from tests.bitbucket import seeds as bitbucket_seeds
from tests.kestra import seeds as kestra_seeds

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
ROOT = Path(__file__).parents[2]
SEEDS: list[tuple[str, str]] = [
    ("runner.yml", (ROOT / "examples" / "redis.yml").read_text(encoding="utf-8")),
    (
        "runner.yml",
        (ROOT / "examples" / "services.yml").read_text(encoding="utf-8") + "steps: [{script: x}]\n",
    ),
    ("bitbucket-pipelines.yml", bitbucket_seeds.FAILING_BUILD),
    ("bitbucket-pipelines.yml", bitbucket_seeds.CUSTOM_RELEASE),
    (
        "bitbucket-pipelines.yml",
        (ROOT / "bench/peer/project/bitbucket-pipelines.yml").read_text(encoding="utf-8"),
    ),
    ("flow.yml", kestra_seeds.FAIL_ERRORS_FINALLY),
    ("flow.yml", kestra_seeds.SUCCESSFUL_VARIANT),
    ("flow.yml", kestra_seeds.DOCKER_REDIS),
]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    database=None,
)


def check(directory: Path, name: str, data: bytes) -> None:
    path = directory / name
    path.write_bytes(data)
    try:
        load_pipeline(path, options=LoadOptions(pipeline=None, check_only=True))
    except InputError as error:
        for problem in [error, *error.others]:
            assert problem.position is not None, f"no position: {problem}"
            assert problem.position.line >= 1 and problem.position.column >= 1
            assert problem.position.path == str(path)


def mutate(text: str, cuts: list[tuple[int, int, str]]) -> str:
    lines = text.splitlines(keepends=True)
    for where, action, junk in cuts:
        if not lines:
            break
        index = where % len(lines)
        line = lines[index]
        match action % 7:
            case 0:
                del lines[index]
            case 1:
                lines.insert(index, line)  # a duplicate key, often
            case 2:
                lines[index] = "  " + line
            case 3:
                lines[index] = line.lstrip()
            case 4:
                position = where % (len(line) + 1)
                lines[index] = line[:position] + junk + line[position:]
            case 5:
                lines[index] = line.replace(":", junk or ": [", 1)
            case _:
                lines[index], lines[-1] = lines[-1], line
    return "".join(lines)


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    cuts=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 6), st.text(max_size=8)), max_size=6),
)
def test_mutated_pipelines_never_crash_the_loaders(
    tmp_path: Path, seed: tuple[str, str], cuts: list[tuple[int, int, str]]
) -> None:
    name, text = seed
    check(tmp_path, name, mutate(text, cuts).encode("utf-8", errors="surrogatepass"))


YAML_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "namespace",
                    "tasks",
                    "type",
                    "steps",
                    "script",
                    "pipelines",
                    "default",
                    "step",
                    "final",
                    "image",
                    "services",
                    "errors",
                    "finally",
                    "detach",
                    "stop",
                    "name",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=5,
        ),
    ),
    max_leaves=25,
)


@FUZZ
@given(value=YAML_VALUES, name=st.sampled_from(["runner.yml", "bitbucket-pipelines.yml", "flow.yml"]))
def test_generated_documents_never_crash_the_loaders(tmp_path: Path, value: object, name: str) -> None:
    import yaml

    check(tmp_path, name, yaml.safe_dump(value, allow_unicode=True).encode("utf-8", errors="surrogatepass"))


@FUZZ
@given(
    data=st.binary(max_size=400), name=st.sampled_from(["runner.yml", "bitbucket-pipelines.yml", "flow.yml"])
)
def test_binary_junk_never_crashes_the_loaders(tmp_path: Path, data: bytes, name: str) -> None:
    check(tmp_path, name, data)


HOSTILE = {
    "deep-flow-nesting": "steps: " + "[" * 20_000 + "]" * 20_000,
    "deep-block-nesting": "steps:\n" + "".join("  " * depth + "- \n" for depth in range(1, 4000)),
    "billion-laughs": "\n".join(
        ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
        + ["steps: *a9"]
    ),
    "duplicate-keys": "image: a\nimage: b\nsteps: [{script: x}]\n",
    "utf16": "steps: [{script: x}]\n".encode("utf-16").decode("latin-1"),
    "tabs": "steps:\n\t- script: x\n",
    "anchors-to-nowhere": "steps: *nothing\n",
    "merge-of-a-list": "a: &a [1]\nsteps:\n  - <<: *a\n",
    "tags": "steps: !!python/object:os.system [echo]\n",
    "many-documents": "steps: []\n---\nsteps: []\n",
}


@pytest.mark.parametrize("name", ["runner.yml", "bitbucket-pipelines.yml", "flow.yml"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_documents_are_refused_with_a_position(tmp_path: Path, case: str, name: str) -> None:
    data = HOSTILE[case].encode("latin-1") if case == "utf16" else HOSTILE[case].encode()
    with pytest.raises(InputError) as caught:
        load_pipeline(write(tmp_path, name, data), options=LoadOptions(check_only=True))
    assert caught.value.position is not None


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "runner.yml"
    with path.open("wb") as file:
        file.write(b"steps:\n")
        file.seek(17 * 1024 * 1024)
        file.write(b"# end\n")
    with pytest.raises(InputError) as caught:
        load_pipeline(path)
    assert "a pipeline file may have at most" in caught.value.message
    assert caught.value.position is not None


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path
