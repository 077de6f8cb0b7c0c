"""`leannet profile`'s table: a model's totals and its per-layer static costs."""

from __future__ import annotations

import io
from typing import Any

_SORT_FIELD = {"mac_bytes": "memory_access_bytes"}


def si(v: float, unit: str = "") -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.2f}{suffix}{unit}"
    return f"{v:.0f}{unit}"


def human_bytes(v: float) -> str:
    for div, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(v) >= div:
            return f"{v / div:.2f} {suffix}"
    return f"{v:.0f} B"


# --- `leannet profile` -------------------------------------------------------------------


def profile_table(result: dict[str, Any], sort: str = "order", top: int | None = None) -> str:
    """Totals, then the per-layer table (largest first by `sort`, or execution order)."""
    from rich.console import Console
    from rich.table import Table

    t = result["totals"]
    form = "deployed (re-parameterised, BN folded)" if result["deployed"] else "train-time form (eval mode)"
    lines = [
        f"{result['model']}  input {'x'.join(map(str, result['input']))}  {result['dtype']}  {form}",
        f"  params       {t['params']:>15,}  ({si(t['params'])})",
        f"  MACs         {t['macs']:>15,}  ({si(t['macs'])}; FLOPs = 2 x MACs = {si(t['flops'])})",
        f"  memory acc.  {t['memory_access_bytes']:>15,}  bytes ({human_bytes(t['memory_access_bytes'])})",
        f"  activations  {t['activations']:>15,}  ({si(t['activations'])}; conv/linear outputs)",
    ]
    if t.get("params_unused"):
        lines.append(f"  ({t['params_unused']:,} parameters are never used by the forward)")
    rows = list(enumerate(result["layers"]))
    if sort != "order":
        field = _SORT_FIELD.get(sort, sort)
        rows.sort(key=lambda r: r[1][field], reverse=True)
    shown = rows[:top] if top else rows
    table = Table(box=None, pad_edge=False, header_style="bold",
                  title=f"{len(shown)} of {len(rows)} layers" + ("" if sort == "order" else f", by {sort}"))
    for col in ("#", "layer", "op", "output", "params", "%", "MACs", "%", "mem. access", "%", "acts", "FLOP/B"):
        table.add_column(col, justify="left" if col in ("layer", "op", "output") else "right")

    def pct(v, total):
        return f"{100 * v / total:.1f}" if total else "-"

    for i, row in shown:
        table.add_row(str(i), row["path"] or "(root)", row["op"], "x".join(map(str, row["output_shape"][1:])),
                      si(row["params"]), pct(row["params"], t["params"]),
                      si(row["macs"]), pct(row["macs"], t["macs"]),
                      human_bytes(row["memory_access_bytes"]), pct(row["memory_access_bytes"], t["memory_access_bytes"]),
                      si(row["activations"]), f"{row['intensity']:.1f}")
    buf = io.StringIO()
    Console(file=buf, width=160, no_color=True).print(table)
    return "\n".join(lines) + "\n\n" + buf.getvalue()
