"""Tables about the zoo: our counts next to the papers' numbers."""

from __future__ import annotations

import json

from leannet.deploy.reparam import reparameterize
from leannet.factory import create_model
from leannet.profile.complexity import count_macs, count_params
from leannet.registry import list_models, model_info


def model_rows(pattern: str = "*", with_macs: bool = True) -> list[dict]:
    """One dict per model: our counts at the default input size and the paper's numbers.

    Re-parameterisable models also get `params_deployed_m`/`macs_deployed_m`: papers count
    those in the deployed (single-branch) form, and users compare the wrong one."""
    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        model = create_model(name)
        pub = info.published
        row = {
            "name": name,
            "family": info.family,
            "params_m": count_params(model) / 1e6,
            "macs_m": count_macs(model, info.input_size) / 1e6 if with_macs else None,
            "input": "x".join(map(str, info.input_size[1:])),
            "paper_params_m": pub.params_m,
            "paper_params_form": pub.params_form,
            "paper_macs_m": pub.macs_m,
            "paper_top1": pub.top1,
            "paper_latency_ms": pub.latency_ms,
            "paper_latency_hw": pub.latency_hw,
            "source": pub.source,
            "note": pub.note,
        }
        if info.reparameterizable:
            deployed = reparameterize(model)
            row["params_deployed_m"] = count_params(deployed) / 1e6
            row["macs_deployed_m"] = count_macs(deployed, info.input_size) / 1e6 if with_macs else None
        rows.append(row)
    return rows


def deviation(ours: float, paper: float | None) -> float | None:
    """Relative difference of our count from the paper's, 0.0 when the paper's rounding
    explains it (1.64M printed as "1.6"); None when the paper gives no number."""
    if not paper:
        return None
    text = f"{paper:g}"
    decimals = len(text.partition(".")[2])
    if round(ours, decimals) == paper:
        return 0.0
    return (ours - paper) / paper


def paper_form(row: dict, key: str) -> float:
    """Our `key` ("params_m" or "macs_m") in the form the paper counts it."""
    deployed = key.replace("_m", "_deployed_m")
    return row[deployed] if row["paper_params_form"] == "deployed" and deployed in row else row[key]


def _fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def models_table(pattern: str = "*", with_macs: bool = True, fmt: str = "table") -> str:
    rows = model_rows(pattern, with_macs)
    if fmt == "json":
        return "\n".join(json.dumps(r) for r in rows)
    cols = ["name", "family", "input", "params (M)", "MACs (M)", "deployed params (M)", "deployed MACs (M)",
            "paper params (M)", "paper MACs (M)", "paper top-1"]
    body = [[r["name"], r["family"], r["input"], _fmt(r["params_m"]), _fmt(r["macs_m"], 1),
             _fmt(r.get("params_deployed_m")), _fmt(r.get("macs_deployed_m"), 1),
             _fmt(r["paper_params_m"]), _fmt(r["paper_macs_m"], 0), _fmt(r["paper_top1"])] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False)))  # noqa: E731
    return "\n".join([line(cols), *(line(b) for b in body)]) if body else f"no model matches {pattern!r}"
