"""Journals of made-up runs, event for event as events.schema.json describes them, for the report's tests
and the picture in docs/report.png."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

Event = dict[str, object]

RUN_ID = "20250301-142233-7f3a"
START = datetime(2025, 3, 1, 14, 22, 33, tzinfo=UTC)
BUILD_LINES = [
    "\x1b[1;34m==>\x1b[0m compiling 214 modules",
    "<build> wrote dist/app-1.4.2.tar.gz & dist/app-1.4.2-py3-none-any.whl",
    "quotes \"double\" and 'single' stay as they are",
    "\x1b[32mok\x1b[0m build finished in 5.1s",
]
INTEGRATION_LINES = [
    "waiting for postgres on port 5432",
    "connecting to postgres://app:$SECRET@postgres:5432/app",
    "test_orders.py::test_refund \x1b[31mFAILED\x1b[0m",
    "E   assert 402 == 200",
    "1 failed, 41 passed in 3.92s",
]
# The steps as planned: (id, name, block, group).
PLAN: list[tuple[str, str, str, str | None]] = [
    ("checkout", "checkout", "steps", None),
    ("build", "build", "steps", None),
    ("unit-tests", "unit tests", "steps", "checks"),
    ("lint", "lint", "steps", "checks"),
    ("integration", "integration tests", "steps", None),
    ("deploy", "deploy", "steps", None),
    ("cleanup", "clean up", "finally", None),
]
# When each step that ran started and ended, in seconds after START.
TIMES = {
    "checkout": (0.6, 2.1),
    "build": (2.3, 7.9),
    "unit-tests": (8.0, 12.5),
    "lint": (8.05, 10.2),
    "integration": (13.0, 17.4),
    "cleanup": (17.8, 19.6),
}
GROUP_ENDS = 12.6  # the group's own result comes a little after its last step's
SERVICE = "runner-7f3a-postgres"
SERVICE_TIMES = (12.7, 17.6)
FINALLY_STARTS = TIMES["cleanup"][0]
RUN_SECONDS = 20.1


def at(seconds: float) -> str:
    moment = START + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Journal:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, seconds: float, event_type: str, **fields: object) -> None:
        self.events.append({"v": 1, "type": event_type, "time": at(seconds), "run": RUN_ID, **fields})

    def started(self, seconds: float, step: str) -> None:
        name, block = _plan(step)
        self.add(seconds, "step.started", step=step, name=name, block=block)

    def logs(self, seconds: float, step: str, lines: list[str]) -> None:
        for index, line in enumerate(lines):
            self.add(seconds + index * 0.05, "log", step=step, line=line)

    def finished(self, seconds: float, step: str, status: str, **fields: object) -> None:
        name, block = _plan(step)
        started = TIMES.get(step, (seconds, seconds))[0]
        result: Event = {
            "step": step,
            "name": name,
            "block": block,
            "status": status,
            "exit_code": 0 if status == "SUCCESS" else None,
            "duration": round(seconds - started, 3),
            "message": "",
            "outputs": {},
            "group": False,
            "allowed_failure": False,
        }
        result.update(fields)
        self.add(seconds, "step.finished", **result)

    def resource(
        self, seconds: float, kind: str, what: str, name: str, step: str, *, service: bool = False
    ) -> None:
        self.add(seconds, f"resource.{kind}", kind=what, name=name, step=step, service=service)

    def container(self, step: str) -> None:
        started, ended = TIMES[step]
        self.resource(started - 0.05, "created", "container", f"runner-7f3a-{step}", step)
        self.resource(ended + 0.05, "removed", "container", f"runner-7f3a-{step}", step)


def _plan(step: str) -> tuple[str, str]:
    for step_id, name, block, _ in PLAN:
        if step_id == step:
            return name, block
    return step, "steps"


def realistic_run() -> list[Event]:
    """Two steps one after the other, two side by side in a group, a service beside a step that fails,
    a step skipped after it, and a finally step; with the resources each made and removed."""
    journal = _Journal()
    journal.add(
        0.0,
        "run.started",
        pipeline="release",
        source="pipelines/release.yml",
        engine="unix:///var/run/docker.sock",
        steps=[
            {"step": step, "name": name, "block": block, "group": group} for step, name, block, group in PLAN
        ],
    )
    journal.resource(0.1, "created", "network", "runner-7f3a-net", "")
    journal.resource(0.15, "created", "volume", "runner-7f3a-workspace", "")

    journal.container("checkout")
    journal.started(0.6, "checkout")
    journal.logs(0.7, "checkout", ["cloning into /workspace", "HEAD is now at 9c1e2f4 Release 1.4.2"])
    journal.finished(2.1, "checkout", "SUCCESS", exit_code=0)

    journal.container("build")
    journal.started(2.3, "build")
    journal.logs(2.5, "build", BUILD_LINES)
    journal.finished(7.9, "build", "SUCCESS", exit_code=0, outputs={"version": "1.4.2"})

    journal.container("unit-tests")
    journal.container("lint")
    journal.started(8.0, "unit-tests")
    journal.started(8.05, "lint")
    journal.logs(8.3, "lint", ["src/app/orders.py:88:1: W505 doc line too long (96 > 88 characters)"])
    journal.logs(
        8.4,
        "unit-tests",
        [
            f"tests/test_{name}.py ........ [{percent}%]"
            for name, percent in (("orders", 25), ("refunds", 50), ("users", 75), ("api", 100))
        ],
    )
    journal.finished(
        10.2,
        "lint",
        "WARNING",
        exit_code=1,
        message="exited with code 1 (allowed to fail)",
        allowed_failure=True,
    )
    journal.finished(12.5, "unit-tests", "SUCCESS", exit_code=0)
    journal.add(
        GROUP_ENDS,
        "step.finished",
        step="checks",
        name="checks",
        block="steps",
        status="WARNING",
        exit_code=None,
        duration=4.6,
        message="",
        outputs={},
        group=True,
        allowed_failure=False,
    )

    journal.resource(SERVICE_TIMES[0], "created", "container", SERVICE, "integration", service=True)
    journal.container("integration")
    journal.started(13.0, "integration")
    journal.logs(13.2, "integration", INTEGRATION_LINES)
    journal.finished(17.4, "integration", "FAILED", exit_code=3, message="exited with code 3")
    journal.finished(17.5, "deploy", "SKIPPED", duration=0.0, message="an earlier step failed")
    journal.add(17.5, "notice", text="deploy is skipped: integration tests failed", warning=True)
    journal.resource(SERVICE_TIMES[1], "removed", "container", SERVICE, "integration", service=True)

    journal.container("cleanup")
    journal.started(17.8, "cleanup")
    journal.logs(18.0, "cleanup", ["removing preview environment pr-1482", "done"])
    journal.finished(19.6, "cleanup", "SUCCESS", exit_code=0)

    journal.resource(19.9, "removed", "volume", "runner-7f3a-workspace", "")
    journal.resource(19.95, "removed", "network", "runner-7f3a-net", "")
    journal.add(
        RUN_SECONDS,
        "run.finished",
        status="failed",
        exit_code=1,
        duration=RUN_SECONDS,
        resources={"created": 9, "removed": 9, "failed": [], "kept": False},
    )
    return journal.events


def killed_run(at_seconds: float = 15.0) -> list[Event]:
    """The same run's journal as a killed runner leaves it: everything up to `at_seconds`, no end."""
    return [event for event in realistic_run() if str(event["time"]) <= at(at_seconds)]


def long_output_run(lines: int) -> list[Event]:
    """One step that printed `lines` lines."""
    journal = _Journal()
    journal.add(
        0.0,
        "run.started",
        pipeline="chatty",
        source="chatty.yml",
        engine="local",
        steps=[{"step": "build", "name": "build", "block": "steps", "group": None}],
    )
    journal.started(0.5, "build")
    journal.events.extend(
        {
            "v": 1,
            "type": "log",
            "time": at(0.5 + index / lines),
            "run": RUN_ID,
            "step": "build",
            "line": f"line {index} <of> {lines} & more",
        }
        for index in range(lines)
    )
    journal.finished(2.0, "build", "SUCCESS", exit_code=0, duration=1.5)
    journal.add(2.1, "run.finished", status="success", exit_code=0, duration=2.1)
    return journal.events
