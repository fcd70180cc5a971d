from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runner.errors import InputError
from runner.formats import load_pipeline
from runner.model import ContainerRun, PortBinding, StopAction

BAD_INPUT = [
    pytest.param(
        "steps:\n  - script: echo\n    imgae: busybox\n",
        (3, 5),
        "unknown key 'imgae' in 'steps.0'",
        "did you mean 'image'?",
        id="unknown-key-did-you-mean",
    ),
    pytest.param(
        "image: busybox\nstpes:\n  - script: echo\n",
        (2, 1),
        "unknown key 'stpes' in the top level",
        "did you mean 'steps'?",
        id="unknown-top-level-key",
    ),
    pytest.param(
        "image: busybox\n",
        (1, 1),
        "missing required key 'steps' in the top level",
        "add `steps:`",
        id="no-steps",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - script: echo\n    timeout: soon\n",
        (4, 14),
        "steps.0.timeout: 'soon' is not a duration; write it like 30s, 5m, 1h30m",
        None,
        id="bad-duration",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - script: echo\n    detach: maybe\n",
        (4, 13),
        "steps.0.detach: expected true or false, got 'maybe'",
        "write true or false",
        id="bad-bool",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - script: {a: 1}\n",
        (3, 13),
        "steps.0.script: expected a list, got a mapping",
        None,
        id="script-mapping",
    ),
    pytest.param(
        "image: busybox\nsteps: {a: 1}\n",
        (2, 8),
        "steps: expected a list, got a mapping",
        None,
        id="steps-not-a-list",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - script: [echo a: b]\n",
        (3, 14),
        "steps.0.script.0: expected a string, got a mapping",
        "YAML reads ': ' in an unquoted value as a key; put the whole line in quotes",
        id="colon-in-script",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - id: a\n    script: echo\n  - id: a\n    script: echo\n",
        (5, 9),
        "duplicate step id 'a' (first used at line 3)",
        "give each step its own id",
        id="duplicate-id",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - id: a\n    script: echo\nfinally:\n  - stop: redis\n",
        (6, 11),
        "`stop: redis` names no earlier step",
        "name the id of an earlier detached step (earlier detached steps: none)",
        id="stop-unknown",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - stop: later\n  - id: later\n    detach: true\n",
        (3, 11),
        "`stop: later` names no earlier step",
        None,
        id="stop-names-a-later-step",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - id: a\n    script: echo\n  - stop: a\n",
        (5, 11),
        "step 'a' is not detached: it has nothing left running to stop",
        None,
        id="stop-not-detached",
    ),
    pytest.param(
        "steps:\n  - script: echo\n",
        (2, 5),
        "this step has no image",
        "set `image:` on the step or at the top",
        id="no-image",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - name: idle\n",
        (3, 5),
        "step 'idle' does nothing",
        None,
        id="empty-step",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - detach: true\n    ports: ['80:80:80:80']\n",
        (4, 13),
        "'80:80:80:80' is not a port mapping",
        None,
        id="bad-port",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - id: 'bad id'\n    script: echo\n",
        (3, 9),
        "'bad id' is not a valid step id",
        None,
        id="bad-id",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - script: echo\nimage: other\n",
        (4, 1),
        "duplicate key 'image' (first defined on line 1)",
        None,
        id="duplicate-key",
    ),
    pytest.param(
        "image: busybox\nsteps:\n  - script: [echo\n",
        (4, 1),
        "YAML syntax error: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence that starts at line 3, column 13)",
        None,
        id="yaml-syntax",
    ),
    pytest.param(
        "- just\n- a list\n",
        (1, 1),
        "a pipeline file is a mapping with a `steps:` list",
        None,
        id="not-a-mapping",
    ),
]


@pytest.mark.parametrize(("text", "where", "message", "hint"), BAD_INPUT)
def test_bad_input_is_reported_where_it_is(
    tmp_path: Path, text: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    path = tmp_path / "runner.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_pipeline(path)
    error = caught.value
    assert error.position is not None
    assert (error.position.path, error.position.line, error.position.column) == (str(path), *where)
    assert error.message == message
    if hint is not None:
        assert error.hint == hint


def test_a_full_pipeline_compiles(tmp_path: Path) -> None:
    path = tmp_path / "runner.yml"
    path.write_text(
        textwrap.dedent("""
        name: demo
        image: busybox
        env: {LEVEL: 3, DEBUG: true}
        timeout: 5m
        services:
          db:
            image: redis
            ports: [6379]
            ready: 6379
        steps:
          - name: Build It
            script: echo build
            env: {LEVEL: 4}
            timeout: 1m30s
          - id: web
            detach: true
            command: [httpd, -f]
            ports: ["127.0.0.1:8080:80", "0.0.0.0::81/udp"]
            ready: {command: "wget -q localhost", timeout: 10s}
        errors:
          - script: [echo failed]
        finally:
          - stop: web
            allow_failure: true
    """),
        encoding="utf-8",
    )
    pipeline = load_pipeline(path)
    assert pipeline.name == "demo"
    assert pipeline.timeout == 300
    assert [s.id for s in pipeline.all_steps()] == ["db", "build-it", "web", "errors-1", "finally-1"]
    build = pipeline.steps[0]
    assert isinstance(build.action, ContainerRun)
    assert build.action.env == {"LEVEL": "4", "DEBUG": "true"}
    assert build.action.script == ("echo build",)
    assert build.timeout == 90
    web = pipeline.steps[1].action
    assert isinstance(web, ContainerRun)
    assert web.ports == (
        PortBinding(container_port=80, host_ip="127.0.0.1", host_port=8080),
        PortBinding(container_port=81, protocol="udp", host_ip="0.0.0.0", host_port=None),
    )
    assert web.ready is not None and web.ready.timeout == 10
    db = pipeline.services[0].action
    # no address: the backend's default, which is loopback on a local engine (tests/test_safe_defaults.py)
    assert isinstance(db, ContainerRun) and db.detach and db.ports[0].host_ip == ""
    final = pipeline.finally_[0]
    assert final.action == StopAction(target="web") and final.allow_failure
