"""Kestra task types this tool cannot run, by family, and why: so that a flow is refused once, with every
such task and its place, rather than at the first one."""

from __future__ import annotations

# (prefix of the type, why it cannot run here), the most specific first
FAMILIES: tuple[tuple[str, str], ...] = (
    ("io.kestra.plugin.gcp.", "it calls Google Cloud services, which need a cloud account"),
    ("io.kestra.plugin.aws.", "it calls AWS services, which need a cloud account"),
    ("io.kestra.plugin.azure.", "it calls Azure services, which need a cloud account"),
    ("io.kestra.plugin.databricks.", "it calls Databricks, a hosted service"),
    ("io.kestra.plugin.snowflake.", "it calls Snowflake, a hosted service"),
    ("io.kestra.plugin.openai.", "it calls a hosted language model"),
    ("io.kestra.plugin.langchain4j.", "it calls a hosted language model"),
    ("io.kestra.plugin.ai.", "it calls a hosted language model"),
    ("io.kestra.plugin.ollama.", "it needs a language model server"),
    ("io.kestra.plugin.airbyte.", "it drives an Airbyte server"),
    ("io.kestra.plugin.fivetran.", "it calls Fivetran, a hosted service"),
    ("io.kestra.plugin.github.", "it calls GitHub's API with an account"),
    ("io.kestra.plugin.jira.", "it calls Jira, a hosted service"),
    ("io.kestra.plugin.hubspot.", "it calls HubSpot, a hosted service"),
    ("io.kestra.plugin.ee.", "it is part of Kestra's Enterprise Edition"),
    ("io.kestra.plugin.core.trigger.", "it is a trigger, not a task: a flow starts here with `runner run`"),
    ("io.kestra.plugin.core.namespace.", "it changes namespace files on a Kestra server"),
    ("io.kestra.plugin.core.flow.Template", "templates were removed from Kestra; use a Subflow"),
    ("io.kestra.plugin.kubernetes.", "it runs pods on a Kubernetes cluster"),
    ("io.kestra.plugin.spark.", "it submits jobs to a Spark cluster"),
)


def unsupported_reason(kind: str) -> str:
    for prefix, reason in FAMILIES:
        if kind.startswith(prefix):
            return reason
    return "this tool has no local implementation of it"
