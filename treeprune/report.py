"""The change report of a pruning run: one self-contained HTML page, or markdown.

:func:`write_report` (also ``PruneResult.report(path)``) writes, for the original and the pruned
model:

1. **Size** before and after (trees, leaves, nodes, depth, features), with a bar chart;
2. **Metrics** on the report rows (AUC, Gini, KS, log loss, Brier for binary models; RMSE, MAE,
   R² for regression; loss and accuracy for multiclass), score correlations, ``|difference|``
   quantiles and the PSI;
3. **Score distributions** of both models overlaid (scorecard points for binary models, with the
   default :class:`~treeprune.scorecard.Scorecard`; predictions otherwise);
4. **ROC curves** of both models (binary);
5. **The pruning path**: every candidate's leaves against its metric on the held-out rows, with
   the chosen one and the original model marked, and the passes that made the pruned model;
6. **Swap sets**: who is approved by one model and declined by the other at equal approval rates;
7. A **reproducibility manifest**: SHA-256 of the input and output models (of their bytes as
   :mod:`treeprune.io` writes them: XGBoost JSON, LightGBM text; and of the input file when the
   model was read from one), SHA-256 of the report data, library versions, the pruning
   parameters and the seed. The HTML page also embeds it as JSON in
   ``<script type="application/json" id="treeprune-manifest">``.

The report rows are ``X``/``y`` when given, otherwise the *judge* rows that
:func:`treeprune.prune` kept in the result (never the rows the pruning was fitted on, but the
rows that chose the pruned model: its figures there are optimistic). The summary says which rows
each figure comes from (fit / judge / given test rows) and repeats the run's warnings
(``PruneResult.warnings``).

Formats: ``.html``/``.htm`` (default) gives one file with the plots embedded as base64 PNG data
URIs. ``.md`` gives markdown with the plots written as PNG files in a folder next to it,
``<name>_files/`` (relative links, so the page renders on GitHub/GitLab, which do not show data
URIs). Every file is written atomically. Plots use matplotlib's Agg renderer through
``matplotlib.figure.Figure`` (the global pyplot backend is left alone).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import io as _io
import json
import math
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from .ensemble import Ensemble
from .errors import DataError, TreePruneError
from .scorecard import Scorecard

#: Libraries whose versions go into the manifest.
LIBRARIES = ("treeprune", "numpy", "pandas", "scipy", "scikit-learn", "numba", "xgboost",
             "lightgbm", "matplotlib")
_FORMATS = {"html": "html", "htm": "html", "md": "markdown", "markdown": "markdown"}
_COLORS = ("#4c72b0", "#dd8452")


# ------------------------------------------------------------------------------------------------
# hashes and the manifest
# ------------------------------------------------------------------------------------------------
def model_bytes(ens: Ensemble) -> bytes:
    """The ensemble serialized by :mod:`treeprune.io` in its source format.

    XGBoost JSON bytes (``treeprune.io.xgboost.to_bytes(ens, ubj=False)``) or LightGBM text
    (``treeprune.io.lightgbm.to_text(ens)``, UTF-8): exactly what ``ens.save("model.json")`` or
    ``ens.save("model.txt")`` writes.
    """
    if ens.source == "lightgbm":
        from .io.lightgbm import to_text

        return to_text(ens).encode("utf-8")
    from .io.xgboost import to_bytes

    return to_bytes(ens, ubj=False)


def model_sha256(ens: Ensemble) -> str:
    """SHA-256 (hex) of :func:`model_bytes`."""
    return hashlib.sha256(model_bytes(ens)).hexdigest()


def _safe_model_sha256(ens: Ensemble) -> str:
    try:
        return model_sha256(ens)
    except TreePruneError as exc:
        return f"unavailable ({exc})"


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes, or None when it cannot be read."""
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except OSError:
        return None


def data_sha256(ens: Ensemble, X: Any, y: Any = None) -> str:
    """SHA-256 of the rows as the model reads them (float64, C order) followed by the labels."""
    from .data import to_matrix

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(to_matrix(ens, X, np.float64)).tobytes())
    if y is not None:
        h.update(np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(-1)).tobytes())
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of Python, the platform and the libraries in :data:`LIBRARIES`."""
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def manifest(result: Any, X: Any = None, y: Any = None) -> dict[str, Any]:
    """The reproducibility manifest of a :class:`~treeprune.pruning.PruneResult` (JSON-ready).

    Keys: ``input_model`` and ``output_model`` (source, objective, sizes, ``sha256`` of the
    treeprune-serialized bytes, and for the input ``file`` and ``file_sha256`` when it was read
    from a file), ``data`` (``rows`` and ``sha256`` of the report rows: ``X``/``y`` when given,
    else the judge rows kept in the result, as the report uses; ``origin`` says which;
    ``fit_rows``/``judge_rows`` of the run), ``parameters`` (what :func:`treeprune.prune` was
    called with), ``seed``, ``metric``, ``warnings``, ``timings``, ``passes``, ``versions`` and
    ``created`` (UTC).
    """
    original, pruned = result.original, result.model

    def describe(ens: Ensemble) -> dict[str, Any]:
        return {"source": ens.source, "objective": ens.objective.name, "n_trees": ens.n_trees,
                "n_leaves": ens.n_leaves, "n_nodes": ens.n_nodes, "n_features": ens.n_features,
                "sha256": _safe_model_sha256(ens)}

    inp = describe(original)
    src = original.source_meta.get("source_path")
    if src:
        inp["file"] = str(src)
        inp["file_sha256"] = file_sha256(src)
    data: dict[str, Any] = {"rows": None, "sha256": None, "origin": None}
    origin = "given"
    if X is None and getattr(result, "judge_X", None) is not None:
        # the report's default rows: the judge rows kept in the result
        X, y, origin = result.judge_X, result.judge_y, "judge"
    if X is not None:
        try:
            data = {"rows": int(len(X)), "sha256": data_sha256(original, X, y),
                    "origin": origin}
        except (TreePruneError, ValueError, TypeError):
            data = {"rows": int(len(X)), "sha256": None, "origin": origin}
    data["fit_rows"] = int(len(result.fit_index))
    data["judge_rows"] = int(len(result.judge_index))
    params = dict(result.params)
    return _jsonable({
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "input_model": inp,
        "output_model": describe(pruned),
        "data": data,
        "parameters": params,
        "seed": params.get("random_state"),
        "metric": {"name": result.metric, "original_judge": result.original_metric,
                   "pruned_judge": result.chosen_metric},
        "warnings": list(getattr(result, "warnings", [])),
        "timings": dict(result.timings),
        "passes": [str(rec) for rec in pruned.history],
        "versions": library_versions(),
    })


# ------------------------------------------------------------------------------------------------
# the numbers
# ------------------------------------------------------------------------------------------------
def size_table(original: Ensemble, pruned: Ensemble) -> pd.DataFrame:
    """Trees, leaves, nodes, depth and features used, before and after."""
    rows = {}
    for label, ens in (("original", original), ("pruned", pruned)):
        depths = ens.tree_depths()
        rows[label] = {
            "trees": ens.n_trees,
            "leaves": ens.n_leaves,
            "nodes": ens.n_nodes,
            "max depth": int(depths.max()) if len(depths) else 0,
            "features used": int(len(ens.features_used())),
        }
    frame = pd.DataFrame(rows)
    frame["pruned / original"] = [
        f"{a / b:.1%}" if b else "n/a" for a, b in zip(frame["pruned"], frame["original"],
                                                        strict=True)
    ]
    return frame


@dataclass
class _Content:
    """Everything the page shows, computed once and rendered as HTML or markdown."""

    title: str
    summary: str
    size: pd.DataFrame
    data_note: str
    metrics: pd.DataFrame | None = None
    stats: pd.DataFrame | None = None
    swap_sets: list[tuple[str, pd.DataFrame, pd.DataFrame | None]] = field(default_factory=list)
    path: pd.DataFrame | None = None
    reasons: pd.DataFrame | None = None
    passes: list[str] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rows: pd.DataFrame | None = None
    metrics_note: str = ""


def _png(fig: Any) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _plot_size(size: pd.DataFrame) -> bytes:
    fig = _figure(8.0, 3.2)
    items = ["trees", "leaves", "nodes"]
    axes = fig.subplots(1, len(items))
    for ax, item in zip(axes, items, strict=True):
        vals = [float(size.loc[item, "original"]), float(size.loc[item, "pruned"])]
        bars = ax.bar(["original", "pruned"], vals, color=_COLORS)
        ax.set_title(item)
        for bar, v in zip(bars, vals, strict=True):
            ax.annotate(f"{int(v):,}", (bar.get_x() + bar.get_width() / 2, v),
                        ha="center", va="bottom", fontsize=8)
        ax.margins(y=0.15)
    fig.suptitle("Size before and after pruning")
    return _png(fig)


def _plot_scores(a: np.ndarray, b: np.ndarray, xlabel: str) -> bytes:
    fig = _figure()
    ax = fig.subplots()
    lo = float(np.nanmin([a.min(), b.min()]))
    hi = float(np.nanmax([a.max(), b.max()]))
    bins = np.linspace(lo, hi, 41) if hi > lo else 10
    ax.hist(a, bins=bins, alpha=0.5, label="original", color=_COLORS[0])
    ax.hist(b, bins=bins, alpha=0.5, label="pruned", color=_COLORS[1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.set_title("Score distributions")
    ax.legend()
    return _png(fig)


def _plot_roc(y: np.ndarray, a: np.ndarray, b: np.ndarray, auc_a: float, auc_b: float) -> bytes:
    from sklearn.metrics import roc_curve

    fig = _figure(5.0, 5.0)
    ax = fig.subplots()
    for score, label, color, auc in ((a, "original", _COLORS[0], auc_a),
                                     (b, "pruned", _COLORS[1], auc_b)):
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.4f})", color=color)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate (goods declined)")
    ax.set_ylabel("true positive rate (bads declined)")
    ax.set_title("ROC curves")
    ax.legend(loc="lower right")
    return _png(fig)


def _plot_path(result: Any) -> bytes:
    path = result.path
    fig = _figure(7.0, 4.2)
    ax = fig.subplots()
    leaves = path["n_leaves"].to_numpy(dtype=float)
    ax.scatter(leaves, path["metric_fit"], s=12, color="#bbbbbb", label="candidates (fit rows)")
    ax.scatter(leaves, path["metric_judge"], s=18, color=_COLORS[0],
               label="candidates (judge rows)")
    chosen = path[path["chosen"]]
    ax.scatter(chosen["n_leaves"], chosen["metric_judge"], s=160, marker="*", color="#c44e52",
               zorder=5, label="chosen")
    ax.axhline(result.original_metric, color="black", linestyle="--", linewidth=1,
               label=f"original ({result.original.n_leaves:,} leaves)")
    tol = result.params.get("tolerance")
    if tol:
        higher = result.metric != "loss"
        ax.axhline(result.original_metric - tol if higher else result.original_metric + tol,
                   color="black", linestyle=":", linewidth=1, label=f"tolerance {tol:g}")
    if len(leaves) and leaves.max() / max(leaves.min(), 1) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("leaves")
    ax.set_ylabel(result.metric)
    ax.set_title("Pruning path")
    ax.legend(fontsize=8)
    return _png(fig)


def _build(result: Any, X: Any, y: Any) -> _Content:
    from .comparison import compare

    original, pruned = result.original, result.model
    size = size_table(original, pruned)
    given = X is not None
    if given:
        origin = "given rows (a test only if the pruning never saw them)"
    else:
        origin = ("judge rows of the pruning run: they chose the pruned model, so its figures "
                  "here are optimistic, not an independent test")
        X, y = result.judge_X, result.judge_y
    if X is None and getattr(result, "confirm_X", None) is not None:
        # cross-fitted: the final model saw every judge row; the confirm rows saw no decision
        X, y = result.confirm_X, result.confirm_y
        origin = "confirm rows of the pruning run (used by no decision)"
    content = _Content(
        title="treeprune report",
        summary=result.summary(),
        size=size,
        data_note=(f"{len(X):,} {origin}" if X is not None else "no rows available"),
    )
    content.warnings = list(getattr(result, "warnings", []))
    content.rows = rows_table(result, len(X) if (given and X is not None) else None)
    content.metrics_note = (
        f"On the {content.data_note}." if X is not None else "")
    content.images["size"] = _plot_size(size)
    content.captions["size"] = "Trees, leaves and nodes of the original and the pruned model."

    # the pruning path
    content.path = result.path.copy()
    content.images["path"] = _plot_path(result)
    content.captions["path"] = (
        f"Every candidate's {result.metric} on the rows it was fitted on (grey) and on the judge "
        f"rows (blue), which it was not fitted on but which chose among the candidates; the star "
        f"is the chosen model, the dashed line the original model."
    )
    content.passes = [str(rec) for rec in pruned.history]

    multiclass = original.objective.is_multiclass or original.n_groups != 1
    if X is None:
        for key in ("metrics", "scores", "roc", "swap"):
            content.notes[key] = "No rows: pass X and y to the report."
    elif multiclass:
        for key in ("scores", "roc", "swap"):
            content.notes[key] = "Not available for multiclass models."
        if y is not None:
            content.metrics = _multiclass_metrics(original, pruned, X, y)
        else:
            content.notes["metrics"] = "No labels: pass y to see the loss and accuracy."
    else:
        yv = None if y is None else np.asarray(y, dtype=np.float64).reshape(-1)
        try:
            cmp = compare(original, pruned, X, yv)
        except DataError as exc:
            cmp = None
            for key in ("metrics", "scores", "roc", "swap"):
                content.notes[key] = f"Not available: {exc}"
        if cmp is not None:
            _fill_comparison(content, cmp, original, pruned, X, yv)
        from .reasons import report_section

        content.reasons, content.notes["reasons"] = report_section(original, pruned, X)

    content.notes.setdefault("reasons", "Not available: reason codes need rows and a binary or "
                                        "regression model.")
    content.manifest = manifest(result, X, y) if given else manifest(result)
    return content


def rows_table(result: Any, n_test: int | None = None) -> pd.DataFrame:
    """Which rows each figure of a pruning run comes from: fit, judge and (given) test rows.

    Columns: ``rows`` (count), ``used for``, ``original`` and ``pruned`` (the selection metric
    there, where the run computed it).
    """
    metric = result.metric
    path = result.path
    chosen = path.iloc[result.chosen]
    cv = result.params.get("cv") or 1
    fit_use = ("fitting the candidates (tree selection, collapses, leaf refits)" if cv < 2 else
               f"fitting the candidates, {cv} folds (each row fitted in all folds but one)")
    judge_use = ("choosing among the candidates: optimistic for the chosen one" if cv < 2 else
                 "choosing among the candidates, out of fold: optimistic for the chosen one")
    rows = [{"rows set": "fit", "rows": len(result.fit_index), "used for": fit_use,
             f"original {metric}": math.nan, f"pruned {metric}": float(chosen["metric_fit"])},
            {"rows set": "judge", "rows": len(result.judge_index), "used for": judge_use,
             f"original {metric}": float(result.original_metric),
             f"pruned {metric}": float(chosen["metric_judge"])}]
    if n_test is not None:
        rows.append({"rows set": "test (given)", "rows": n_test,
                     "used for": "nothing in the pruning, if they are new rows: the independent "
                     "check (Metrics below)", f"original {metric}": math.nan,
                     f"pruned {metric}": math.nan})
    return pd.DataFrame(rows).set_index("rows set")


def _multiclass_metrics(original: Ensemble, pruned: Ensemble, X: Any, y: Any) -> pd.DataFrame:
    yv = np.asarray(y, dtype=np.float64).reshape(-1)
    rows = {}
    for label, ens in (("original", original), ("pruned", pruned)):
        margin = ens.predict(X, output="margin")
        rows[label] = {f"loss ({ens.objective.loss})": ens.objective.loss_value(yv, margin),
                       "accuracy": float(np.mean(np.argmax(margin, axis=1) == yv))}
    frame = pd.DataFrame(rows)
    frame["pruned - original"] = frame["pruned"] - frame["original"]
    frame.index.name = "metric"
    return frame


def _fill_comparison(content: _Content, cmp: Any, original: Ensemble, pruned: Ensemble, X: Any,
                     y: np.ndarray | None) -> None:
    if cmp.metrics is not None:
        m = cmp.metrics.rename(columns={"a": "original", "b": "pruned", "delta": "pruned - original"})
        m.index.name = "metric"
        content.metrics = m
    else:
        content.notes["metrics"] = "No labels: pass y to see AUC, Gini and KS."
    stats = [("Pearson correlation", cmp.correlations["pearson"]),
             ("Spearman correlation", cmp.correlations["spearman"]),
             ("Kendall correlation", cmp.correlations["kendall"])]
    stats += [(f"|original - pruned| {k}", v) for k, v in cmp.abs_diff.items()]
    stats.append((f"PSI pruned vs original ({cmp.psi.band})", cmp.psi.value))
    content.stats = pd.DataFrame(stats, columns=["statistic", "value"]).set_index("statistic")

    binary = original.objective.is_binary
    if binary:
        sc = Scorecard()
        ma = original.predict(X, output="margin")
        mb = pruned.predict(X, output="margin")
        a, b = sc.score_from_margin(ma), sc.score_from_margin(mb)
        xlabel = (f"scorecard points (PDO {sc.pdo:g}, {sc.base_score:g} at good:bad odds "
                  f"{sc.base_odds:g}; higher = safer)")
    else:
        a = np.asarray(original.predict(X), dtype=np.float64)
        b = np.asarray(pruned.predict(X), dtype=np.float64)
        ma, mb = a, b
        xlabel = "prediction"
    content.images["scores"] = _plot_scores(np.asarray(a), np.asarray(b), xlabel)
    content.captions["scores"] = f"Scores of the {cmp.n_rows:,} report rows, overlaid."
    if binary and y is not None and cmp.metrics is not None:
        content.images["roc"] = _plot_roc(y, ma, mb, float(cmp.metrics.loc["auc", "a"]),
                                          float(cmp.metrics.loc["auc", "b"]))
        content.captions["roc"] = "ROC curves of both models on the report rows."
    elif binary:
        content.notes["roc"] = "No labels: pass y to see the ROC curves."
    else:
        content.notes["roc"] = "ROC curves apply to binary models only."

    what = "bad rate" if cmp.task == "binary" else "mean y"
    for sw in cmp.swap_sets:
        counts = sw.counts.copy()
        counts.index = ["original approves", "original declines"]
        counts.columns = ["pruned approves", "pruned declines"]
        outcome = None
        if sw.outcome is not None:
            outcome = sw.outcome.copy()
            outcome.index = counts.index
            outcome.columns = [f"{c} ({what})" for c in counts.columns]
        label = (f"{sw.label}: approved {sw.approval_rate_a:.1%} (original) / "
                 f"{sw.approval_rate_b:.1%} (pruned); agreement {sw.agreement:.2%}; "
                 f"swap-in {sw.swap_in:,}, swap-out {sw.swap_out:,}")
        content.swap_sets.append((label, counts, outcome))


# ------------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else ""
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "n/a"
        if f == int(f) and abs(f) < 1e15:
            return f"{int(f):,}"
        if f != 0 and (abs(f) < 1e-4 or abs(f) >= 1e7):
            return f"{f:.4e}"
        return f"{f:.6f}"
    return str(v)


def _html_table(frame: pd.DataFrame, cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame.columns])
    rows = []
    for idx, row in frame.iterrows():
        cells = "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row)
        rows.append(f"<tr><th>{html.escape(str(idx))}</th>{cells}</tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _md_table(frame: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    cols = [frame.index.name or "", *frame.columns]
    lines = ["| " + " | ".join(cell(c) for c in cols) + " |",
             "|" + "|".join(["---"] * len(cols)) + "|"]
    for idx, row in frame.iterrows():
        lines.append("| " + " | ".join([cell(idx), *(cell(_fmt(v)) for v in row)]) + " |")
    return "\n".join(lines)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
thead th{background:#f3f3f3}tbody th{text-align:left;font-weight:600}
img{max-width:100%}figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em}
.note{color:#666;font-style:italic}code{background:#f3f3f3;padding:0 .2em}
.warnings{background:#fff4e5;border-left:4px solid #e67e22;padding:.2em 1em;margin:1em 0}
.rows{font-weight:600}
"""

SECTIONS = (("summary", "Summary"), ("size", "Size before and after"),
            ("metrics", "Metrics"), ("scores", "Score distributions"), ("roc", "ROC curves"),
            ("path", "Pruning path"), ("swap-sets", "Swap sets"), ("reasons", "Reason codes"),
            ("manifest", "Reproducibility manifest"))


def _render_html(c: _Content) -> str:
    def img(key: str) -> str:
        if key not in c.images:
            return f'<p class="note">{html.escape(c.notes.get(key, "Not available."))}</p>'
        data = base64.b64encode(c.images[key]).decode("ascii")
        return (f'<figure><img alt="{html.escape(key)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(c.captions.get(key, ''))}</figcaption></figure>")

    def note(key: str) -> str:
        return f'<p class="note">{html.escape(c.notes[key])}</p>' if key in c.notes else ""

    parts = [f"<h1>{html.escape(c.title)}</h1>",
             '<nav>' + " · ".join(f'<a href="#{sid}">{html.escape(t)}</a>' for sid, t in SECTIONS)
             + "</nav>"]
    warn = ""
    if c.warnings:
        warn = ('<div class="warnings"><h3>Warnings</h3><ul>'
                + "".join(f"<li>{html.escape(w)}</li>" for w in c.warnings) + "</ul></div>")
    rows_html = ""
    if c.rows is not None:
        rows_html = ("<h3>Which rows each figure comes from</h3>" + _html_table(c.rows))
    parts.append(f'<section id="summary"><h2>Summary</h2><p>{html.escape(c.summary)}</p>'
                 f"{warn}<p>Report rows: {html.escape(c.data_note)}.</p>{rows_html}</section>")
    parts.append(f'<section id="size"><h2>Size before and after</h2>{_html_table(c.size)}'
                 f'{img("size")}</section>')
    metrics = f'<p class="rows">{html.escape(c.metrics_note)}</p>' if c.metrics_note else ""
    if c.metrics is not None:
        metrics += _html_table(c.metrics)
    metrics += note("metrics")
    if c.stats is not None:
        metrics += "<h3>Agreement of the scores</h3>" + _html_table(c.stats)
    parts.append(f'<section id="metrics"><h2>Metrics</h2>{metrics}</section>')
    parts.append(f'<section id="scores"><h2>Score distributions</h2>{img("scores")}</section>')
    parts.append(f'<section id="roc"><h2>ROC curves</h2>{img("roc")}</section>')
    path_html = img("path")
    if c.passes:
        path_html += "<h3>Passes that made the pruned model</h3><ol>" + "".join(
            f"<li>{html.escape(p)}</li>" for p in c.passes) + "</ol>"
    if c.path is not None:
        path_html += ("<details><summary>All candidates</summary>"
                      + _html_table(c.path.rename_axis("candidate")) + "</details>")
    parts.append(f'<section id="path"><h2>Pruning path</h2>{path_html}</section>')
    swaps = note("swap")
    if c.swap_sets:
        swaps += ("<p>Both models are cut at the same approval rate; the off-diagonal cells are the "
                  "applicants whose decision changes.</p>")
    for label, counts, outcome in c.swap_sets:
        swaps += f"<h3>{html.escape(label)}</h3>" + _html_table(counts)
        if outcome is not None:
            swaps += _html_table(outcome)
    parts.append(f'<section id="swap-sets"><h2>Swap sets</h2>{swaps}</section>')
    reasons = note("reasons") + ("" if c.reasons is None else _html_table(c.reasons))
    parts.append(f'<section id="reasons"><h2>Reason codes</h2>{reasons}</section>')
    man = c.manifest
    rows = [("input model sha256", man["input_model"]["sha256"]),
            ("output model sha256", man["output_model"]["sha256"])]
    if "file_sha256" in man["input_model"]:
        rows.append(("input file", f'{man["input_model"]["file"]}'))
        rows.append(("input file sha256", str(man["input_model"]["file_sha256"])))
    rows.append(("data sha256", str(man["data"]["sha256"])))
    rows.append(("seed (random_state)", str(man["seed"])))
    rows += [(f"version: {k}", v) for k, v in man["versions"].items()]
    table = pd.DataFrame(rows, columns=["item", "value"]).set_index("item")
    blob = json.dumps(man, indent=2, sort_keys=True)
    script = json.dumps(man, sort_keys=True).replace("</", "<\\/")
    parts.append(
        '<section id="manifest"><h2>Reproducibility manifest</h2>'
        "<p>Model hashes are SHA-256 of the bytes treeprune writes for each model (XGBoost JSON, "
        "LightGBM text): saving the pruned model to a <code>.json</code>/<code>.txt</code> file "
        "gives a file with the output hash.</p>"
        f"{_html_table(table, 'manifest')}<pre>{html.escape(blob)}</pre>"
        f'<script type="application/json" id="treeprune-manifest">{script}</script></section>'
    )
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(c.title)}</title><style>{_CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def _render_markdown(c: _Content, folder_name: str) -> str:
    def img(key: str) -> str:
        if key not in c.images:
            return f"_{c.notes.get(key, 'Not available.')}_"
        return f"![{key}]({quote(folder_name)}/{key}.png)\n\n_{c.captions.get(key, '')}_"

    def note(key: str) -> str:
        return f"_{c.notes[key]}_\n\n" if key in c.notes else ""

    out = [f"# {c.title}", "", c.summary, ""]
    if c.warnings:
        out += ["### Warnings", "", *[f"- **{w}**" for w in c.warnings], ""]
    out += [f"Report rows: {c.data_note}.", ""]
    if c.rows is not None:
        out += ["### Which rows each figure comes from", "", _md_table(c.rows), ""]
    out += ["## Size before and after", "", _md_table(c.size), "", img("size"), "",
            "## Metrics", ""]
    if c.metrics_note:
        out += [f"**{c.metrics_note}**", ""]
    if c.metrics is not None:
        out += [_md_table(c.metrics), ""]
    out.append(note("metrics"))
    if c.stats is not None:
        out += ["### Agreement of the scores", "", _md_table(c.stats), ""]
    out += ["## Score distributions", "", img("scores"), "", "## ROC curves", "", img("roc"), "",
            "## Pruning path", "", img("path"), ""]
    if c.passes:
        out += ["### Passes that made the pruned model", ""]
        out += [f"{i}. {p}" for i, p in enumerate(c.passes, 1)] + [""]
    if c.path is not None:
        out += ["### All candidates", "", _md_table(c.path.rename_axis("candidate")), ""]
    out += ["## Swap sets", "", note("swap")]
    for label, counts, outcome in c.swap_sets:
        out += [f"### {label}", "", _md_table(counts), ""]
        if outcome is not None:
            out += [_md_table(outcome), ""]
    out += ["## Reason codes", "", note("reasons")]
    if c.reasons is not None:
        out += [_md_table(c.reasons), ""]
    out += ["## Reproducibility manifest", "",
            "Model hashes are SHA-256 of the bytes treeprune writes for each model (XGBoost JSON, "
            "LightGBM text).", "", "```json", json.dumps(c.manifest, indent=2, sort_keys=True),
            "```", ""]
    return "\n".join(out)


def _resolve_format(path: Path, format: str | None) -> str:
    if format is not None:
        key = str(format).lower().lstrip(".")
        if key not in _FORMATS:
            raise TreePruneError(f"unknown report format {format!r}; use 'html' or 'markdown'")
        return _FORMATS[key]
    return "markdown" if path.suffix.lower() in (".md", ".markdown") else "html"


def write_report(result: Any, path: Any, X: Any = None, y: Any = None,
                 format: str | None = None) -> Path:
    """Write the change report of a pruning run.

    Parameters
    ----------
    result : PruneResult
        What :func:`treeprune.prune` returned.
    path : str or path
        The report file. ``.md`` writes markdown (plots as PNG files in ``<stem>_files/`` next
        to it); anything else a self-contained HTML page (plots embedded as base64 PNG).
    X, y : optional
        Rows (and labels) to compare the models on; default: the held-out judge rows stored in
        the result.
    format : {"html", "markdown"}, optional
        Overrides the suffix.

    Returns
    -------
    pathlib.Path
        The report file.
    """
    from .io._files import atomic_write_bytes

    target = Path(path)
    fmt = _resolve_format(target, format)
    if target.is_dir():
        raise TreePruneError(f"report path is a directory: {target}")
    content = _build(result, X, y)
    protect = result.original.source_meta.get("source_path")
    if fmt == "html":
        atomic_write_bytes(target, _render_html(content).encode("utf-8"), protect=protect)
        return target
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise TreePruneError(f"output folder does not exist: {parent}")
    folder_name = f"{target.stem}_files"
    folder = parent / folder_name
    folder.mkdir(exist_ok=True)
    for key, data in content.images.items():
        atomic_write_bytes(folder / f"{key}.png", data)
    atomic_write_bytes(target, _render_markdown(content, folder_name).encode("utf-8"),
                       protect=protect)
    return target


__all__ = ["data_sha256", "file_sha256", "library_versions", "manifest", "model_bytes",
           "model_sha256", "rows_table", "size_table", "write_report"]
