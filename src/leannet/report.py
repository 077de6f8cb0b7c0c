"""Tables about the zoo: our counts next to the papers' numbers."""

from __future__ import annotations

import json

from leannet.factory import create_model
from leannet.profile.complexity import count_macs, count_params
from leannet.registry import list_models, model_info


def model_rows(pattern: str = "*", with_macs: bool = True) -> list[dict]:
    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        model = create_model(name)
        row = {
            "name": name,
            "family": info.family,
            "params_m": count_params(model) / 1e6,
            "macs_m": count_macs(model, info.input_size) / 1e6 if with_macs else None,
            "input": "x".join(map(str, info.input_size[1:])),
            "paper_params_m": info.published.params_m,
            "paper_macs_m": info.published.macs_m,
            "paper_top1": info.published.top1,
            "source": info.published.source,
        }
        rows.append(row)
    return rows


def _fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def models_table(pattern: str = "*", with_macs: bool = True, fmt: str = "table") -> str:
    rows = model_rows(pattern, with_macs)
    if fmt == "json":
        return "\n".join(json.dumps(r) for r in rows)
    cols = ["name", "family", "input", "params (M)", "MACs (M)", "paper params (M)", "paper MACs (M)", "paper top-1"]
    body = [[r["name"], r["family"], r["input"], _fmt(r["params_m"]), _fmt(r["macs_m"], 1),
             _fmt(r["paper_params_m"]), _fmt(r["paper_macs_m"], 0), _fmt(r["paper_top1"])] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False)))  # noqa: E731
    return "\n".join([line(cols), *(line(b) for b in body)]) if body else f"no model matches {pattern!r}"
