"""The Grafana dashboard and its panel queries, with dashboard variables filled in."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "kpi-stream.json"
# Values a user gets by default: window 1h, all queues (the variable's allValue).
DEFAULT_VARIABLES = {"window": "1h", "queue": ".*"}


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that queries data (rows only group them), including collapsed rows."""
    found = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def fill_variables(expr: str, variables: dict[str, str]) -> str:
    """Replace $name and ${name}; an unknown variable is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"dashboard variable ${name} has no test value")
        return variables[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def panel_queries(
    dashboard: dict[str, Any], variables: dict[str, str] = DEFAULT_VARIABLES
) -> list[tuple[str, str]]:
    """(panel title / refId, PromQL) of every target of every data panel."""
    return [
        (f"{panel['title']} / {target['refId']}", fill_variables(target["expr"], variables))
        for panel in data_panels(dashboard)
        for target in panel["targets"]
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(variable name, series selector) of every label_values() query variable."""
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text)
            assert match, f"unsupported variable query {variable['query']}"
            found.append((variable["name"], match.group(1)))
    return found
