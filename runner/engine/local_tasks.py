"""Built-in tasks that talk to the outside from the runner itself: HTTP requests and downloads, the local
key-value store, execution labels, the run's stored files, and notifications that are shown, and sent
only when the run allows it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.engine.status import StepStatus
from runner.errors import RunnerError
from runner.model import (
    GitCloneAction,
    HttpAction,
    KeyValueAction,
    LabelsAction,
    NotifyAction,
    PurgeAction,
    WriteAction,
)

LocalAction = (
    HttpAction | KeyValueAction | LabelsAction | PurgeAction | WriteAction | GitCloneAction | NotifyAction
)


@dataclass
class LocalResult:
    status: StepStatus
    message: str = ""
    outputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class LocalContext:
    render: Callable[[str], str]
    log: Callable[[str], None]
    store_file: Callable[[str, bytes], str]  # (name, content) -> the stored file's URI
    purge_files: Callable[[], list[str]]  # removes the run's stored files, returns their URIs
    add_labels: Callable[[dict[str, str]], None]
    send_notifications: bool
    flow_namespace: str
    put_files: Callable[[bytes], None] | None = None  # a tar into the shared working directory, if any


def run_http(action: HttpAction, context: LocalContext) -> LocalResult:
    import httpx

    headers = {key: context.render(value) for key, value in action.headers.items()}
    if action.content_type:
        headers.setdefault("Content-Type", action.content_type)
    body = context.render(action.body) if action.body is not None else None
    form = {key: context.render(value) for key, value in action.form.items()} or None
    uri = context.render(action.uri)
    try:
        response = httpx.request(
            action.method.upper(), uri, headers=headers, content=body, data=form, timeout=action.timeout
        )
    except httpx.HTTPError as exc:
        return LocalResult(StepStatus.FAILED, f"{action.method} {uri}: {exc}")
    outputs: dict[str, Any] = {
        "code": response.status_code,
        "headers": {key: [value] for key, value in response.headers.items()},
        "uri": uri,
    }
    if action.download:
        name = uri.rstrip("/").rpartition("/")[2].partition("?")[0] or "download"
        outputs["uri"] = context.store_file(name, response.content)
        outputs["length"] = len(response.content)
    else:
        outputs["body"] = response.text
    context.log(f"{action.method} {uri}: {response.status_code}")
    if response.status_code >= 400 and not action.allow_failed:
        return LocalResult(
            StepStatus.FAILED, f"{action.method} {uri} answered {response.status_code}", outputs
        )
    return LocalResult(StepStatus.SUCCESS, outputs=outputs)


def run_kv(action: KeyValueAction, context: LocalContext) -> LocalResult:
    from runner import kvstore

    namespace = context.render(action.namespace) or context.flow_namespace
    key = context.render(action.key)
    if action.operation == "set":
        if not action.overwrite and key in kvstore.keys(namespace):
            return LocalResult(StepStatus.FAILED, f"the key '{key}' is already set in {namespace}")
        value = context.render(action.value) if isinstance(action.value, str) else action.value
        kvstore.put(namespace, key, value)
        return LocalResult(StepStatus.SUCCESS, outputs={})
    if action.operation == "get":
        try:
            return LocalResult(StepStatus.SUCCESS, outputs={"value": kvstore.get(namespace, key)})
        except KeyError:
            if action.error_on_missing:
                return LocalResult(StepStatus.FAILED, f"no key '{key}' in {namespace}")
            return LocalResult(StepStatus.SUCCESS, outputs={})
    if action.operation == "delete":
        deleted = kvstore.delete(namespace, key)
        if not deleted and action.error_on_missing:
            return LocalResult(StepStatus.FAILED, f"no key '{key}' in {namespace}")
        return LocalResult(StepStatus.SUCCESS, outputs={"deleted": deleted})
    prefix = context.render(action.prefix)
    return LocalResult(
        StepStatus.SUCCESS, outputs={"keys": [k for k in kvstore.keys(namespace) if k.startswith(prefix)]}
    )


def run_labels(action: LabelsAction, context: LocalContext) -> LocalResult:
    labels = {key: context.render(value) for key, value in action.labels.items()}
    context.add_labels(labels)
    for key, value in labels.items():
        context.log(f"label {key}={value}")
    return LocalResult(StepStatus.SUCCESS, outputs={})


def run_purge(action: PurgeAction, context: LocalContext) -> LocalResult:
    removed = context.purge_files()
    context.log(f"removed {len(removed)} stored file(s)")
    return LocalResult(StepStatus.SUCCESS, outputs={"uris": removed})


def run_write(action: WriteAction, context: LocalContext) -> LocalResult:
    extension = action.extension if action.extension.startswith(".") else "." + action.extension
    uri = context.store_file("content" + extension, context.render(action.content).encode("utf-8"))
    return LocalResult(StepStatus.SUCCESS, outputs={"uri": uri})


def run_git_clone(action: GitCloneAction, context: LocalContext) -> LocalResult:
    """`git clone` by this machine's git, then the files into the working directory the group shares;
    outside a WorkingDirectory the clone has nowhere to go, as in Kestra, and only its outputs remain."""
    import io
    import subprocess
    import tarfile
    import tempfile
    from urllib.parse import quote, urlsplit, urlunsplit

    url = context.render(action.url)
    if action.username or action.password:
        parts = urlsplit(url)
        credentials = f"{quote(context.render(action.username))}:{quote(context.render(action.password))}"
        url = urlunsplit(
            parts._replace(
                netloc=f"{credentials}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            )
        )
    directory = context.render(action.directory).strip("/")
    with tempfile.TemporaryDirectory(prefix="runner-clone-") as scratch:
        command = ["git", "clone", "--quiet"]
        if action.depth > 0 and "://" in url:
            command += ["--depth", str(action.depth)]
        if action.branch:
            command += ["--branch", context.render(action.branch)]
        target = f"{scratch}/repo"
        done = subprocess.run(
            [*command, "--", url, target], capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            return LocalResult(
                StepStatus.FAILED,
                f"git clone failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}",
            )
        context.log(f"cloned {context.render(action.url)}" + (f" into {directory}" if directory else ""))
        if context.put_files is not None:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                tar.add(target, arcname=directory or ".", recursive=True)
            context.put_files(buffer.getvalue())
    return LocalResult(StepStatus.SUCCESS, outputs={"directory": directory})


def run_notify(action: NotifyAction, context: LocalContext) -> LocalResult:
    """Shown in full (secrets masked like every line); posted only with --send-notifications."""
    payload = context.render(action.payload)
    url = context.render(action.url)
    target = f" to {url}" if url else ""
    if not context.send_notifications:
        context.log(f"{action.service} message, not sent (--send-notifications sends it){target}:")
        for line in payload.splitlines() or [""]:
            context.log(f"  {line}")
        return LocalResult(StepStatus.SUCCESS, outputs={})
    if not url:
        return LocalResult(StepStatus.FAILED, f"{action.service}: sending mail is not supported here")
    import httpx

    try:
        response = httpx.post(url, content=payload, headers={"Content-Type": "application/json"}, timeout=30)
    except httpx.HTTPError as exc:
        raise RunnerError(f"{action.service}: could not post the message: {exc}") from exc
    context.log(f"{action.service} message sent{target}: {response.status_code}")
    if response.status_code >= 400:
        return LocalResult(StepStatus.FAILED, f"{action.service} answered {response.status_code}")
    return LocalResult(StepStatus.SUCCESS, outputs={"code": response.status_code})


RUNNERS: dict[str, Callable[[Any, LocalContext], LocalResult]] = {
    "http": run_http,
    "kv": run_kv,
    "labels": run_labels,
    "purge": run_purge,
    "write": run_write,
    "git-clone": run_git_clone,
    "notify": run_notify,
}


def payload_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
