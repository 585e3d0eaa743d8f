"""The ``treeprune`` command line.

::

    treeprune inspect MODEL [--json]
    treeprune prune MODEL --data FILE --target COL [--positive-label V]
                    [--tolerance T | --max-leaves N | --max-trees N]
                    [--metric auc|gini|ks|loss|fidelity] [--scale original|calibrated]
                    [--unlabeled FILE] [--monotone SPEC] [--cv N|auto] [--device cpu|cuda|auto]
                    --out FILE [--report FILE] [--random-state N] [--force] [--categories C]
    treeprune compare A B --data FILE [--target COL [--positive-label V]] [--json]
                    [--categories C]
    treeprune bench MODEL --data FILE [--rows N] [--json] [--categories C]
    treeprune score MODEL --data FILE [--out FILE] [--output prediction|margin|score] [--keep COL]
                    [--categories C]
    treeprune export-sql MODEL --table NAME [--out FILE] [--categories C] [--reasons K]
    treeprune explain MODEL --data FILE [--k 4] --out reasons.parquet [--groups G.json]
    treeprune upgrade OLD NEW.json|NEW.ubj|NEW.txt [--data FILE] [--force] [--json]
                    [--categories C]

``--categories levels|codes`` (C above) says how a categorical feature's column is written.
    treeprune demo [--out-dir DIR]

Data files are CSV (``.csv``, ``.csv.gz``, ...) or Parquet (``.parquet``/``.pq``, or any file
starting with Parquet's magic bytes). A categorical feature's column holds the levels the model
stores (text such as ``HomeImp``; ``--categories codes`` for integer codes), read with the same
mapping as the SQL export. Outputs are checked before any work (an existing file needs
``--force``; a model's suffix must be one its library writes). Results go to stdout (``--json``
for scripts), progress, messages and warnings to stderr (``--quiet`` silences all but the
warnings). Every error is one line on stderr,
``treeprune: error: <message>``, with exit status 2 for usage, model and data errors and 1 for
anything else; there is never a traceback (set ``TREEPRUNE_DEBUG=1`` to see one). No command
overwrites an existing file without ``--force``, and none ever writes over its input model.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from .errors import (
    DataError,
    MissingDependencyError,
    ModelFormatError,
    PruneError,
    TreePruneError,
    UnsupportedModelError,
)

#: Exit status of usage, model and data errors (the user can fix the command) and of the rest.
EXIT_USAGE, EXIT_FAILURE = 2, 1
_USAGE_ERRORS = (DataError, ModelFormatError, UnsupportedModelError, PruneError,
                 MissingDependencyError)


class CliError(TreePruneError):
    """A problem with the command's arguments or files (exit status 2)."""


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def say(quiet: bool, message: str) -> None:
    """``message`` on stderr unless ``quiet``."""
    if not quiet:
        click.echo(message, err=True)


def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(_jsonable(obj), indent=2, sort_keys=False, allow_nan=False))


def _jsonable(value: Any) -> Any:
    from .report import _jsonable as conv

    return conv(value)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_output(path: Path, force: bool, inputs: list[Path], what: str = "output") -> None:
    """Refuse an existing ``path`` without ``--force`` and any path that is one of the inputs."""
    for inp in inputs:
        if _same_file(path, inp) or path.resolve() == inp.resolve():
            raise CliError(f"refusing to write the {what} over the input file {inp}; "
                           "choose another path")
    if path.is_dir():
        raise CliError(f"{what} path is a directory: {path}")
    if path.exists() and not force:
        raise CliError(f"{what} file exists: {path}; pass --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"{what} folder does not exist: {parent}")


def read_data(path: str | os.PathLike) -> Any:
    """A pandas DataFrame from a CSV or Parquet file."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise CliError(f"data file not found: {p}")
    if p.is_dir():
        raise CliError(f"expected a data file, got a directory: {p}")
    name = p.name.lower()
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise CliError(f"cannot read data file {p}: {exc.strerror or exc}") from exc
    try:
        if name.endswith((".parquet", ".pq")) or magic == b"PAR1":
            return pd.read_parquet(p)
        frame = pd.read_csv(p)
    except (ValueError, OSError, ImportError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read data file {p}: {msg}") from exc
    if frame.shape[1] == 0:
        raise DataError(f"data file {p} has no columns")
    return frame


def _split_target(frame: Any, target: str | None, path: str) -> tuple[Any, Any]:
    from .data import close_matches

    if target is None:
        return frame, None
    if target not in frame.columns:
        columns = [str(c) for c in frame.columns]
        hint = close_matches([target], columns)
        shown = ", ".join(columns[:10])
        more = " ..." if frame.shape[1] > 10 else ""
        raise DataError(f"target column {target!r} not in {path}{hint} (columns: {shown}{more})")
    y = frame[target]
    if y.isna().any():
        raise DataError(f"target column {target!r} has {int(y.isna().sum())} missing values")
    return frame.drop(columns=[target]), y.to_numpy()


def _read_rows(data_path: str, target: str | None, models: list[Any], categories: str
               ) -> tuple[Any, Any]:
    """Features and raw labels of a data file; level columns read with the models' levels."""
    from .data import encode_levels

    X, y = _split_target(read_data(data_path), target, data_path)
    if categories == "levels":
        for ens in models:
            X = encode_levels(ens, X)
    return X, y


def _check_model_out(ens: Any, path: Path) -> None:
    """Refuse, before any work, an output suffix the model's library does not write."""
    if ens.source == "xgboost":
        allowed, kind = (".json", ".ubj"), "an XGBoost model is written as JSON (.json) or UBJSON (.ubj)"
    else:
        allowed, kind = (".txt", ".model"), "a LightGBM model is written as text (.txt)"
    if path.suffix.lower() not in allowed:
        raise CliError(f"--out {path.name}: {kind}; name the output {path.stem}{allowed[0]}")


def _check_report_out(path: Path) -> None:
    if path.suffix.lower() not in (".html", ".htm", ".md", ".markdown"):
        raise CliError(f"--report {path.name}: the report is HTML (.html) or markdown (.md); "
                       f"name it {path.stem}.html or {path.stem}.md")


def _parse_cv(text: str) -> int | str:
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        folds = int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: give a whole number of folds or 'auto'",
                                 param_hint="--cv") from None
    if folds < 1:
        raise click.BadParameter(f"{folds}: at least 1 fold", param_hint="--cv")
    return folds


def _parse_monotone(text: str | None) -> Any:
    """``--monotone``: JSON (object by feature name, or list) or ``name=+1,name=-1``."""
    if text is None:
        return None
    text = text.strip()
    if text[:1] in "{[":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc.msg})", param_hint="--monotone"
                                     ) from None
        if not isinstance(value, (dict, list)):
            raise click.BadParameter("give a JSON object or list", param_hint="--monotone")
        return value
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, sign = part.rpartition("=")
        if not sep or not name or sign.strip() not in ("+1", "1", "-1", "0"):
            raise click.BadParameter(f"{part!r}: write name=+1, name=-1 or name=0",
                                     param_hint="--monotone")
        out[name.strip()] = int(sign)
    return out


def _load_model(path: str) -> Any:
    from .io import load

    return load(path)


def _model_json(ens: Any, path: str | None = None) -> dict[str, Any]:
    from .report import file_sha256

    depths = ens.tree_depths()
    names = list(ens.feature_names) or [f"f{i}" for i in range(ens.n_features)]
    leaves = ens.tree_n_leaves()
    out: dict[str, Any] = {
        "source": ens.source,
        "objective": ens.objective.name,
        # classes of a classifier (2 for binary); None for regression and ranking
        "n_classes": (2 if ens.objective.is_binary else ens.objective.n_classes
                      if ens.objective.is_multiclass else None),
        "n_trees": ens.n_trees,
        "n_leaves": ens.n_leaves,
        "n_nodes": ens.n_nodes,
        "max_depth": int(depths.max()) if len(depths) else 0,
        "leaves_per_tree": {"min": int(leaves.min()) if len(leaves) else 0,
                            "median": float(np.median(leaves)) if len(leaves) else 0,
                            "max": int(leaves.max()) if len(leaves) else 0},
        "n_features": ens.n_features,
        "features_used": [names[i] for i in ens.features_used()],
        "categorical_splits": int(np.count_nonzero((ens.cat_index >= 0) & (ens.left >= 0))),
        "base_margin": np.asarray(ens.base_margin, dtype=float).tolist(),
        "monotone_constraints": {names[i]: c for i, c in enumerate(ens.monotone_constraints)
                                 if c},
    }
    if path is not None:
        out = {"file": str(path), "file_sha256": file_sha256(path), **out}
    return out


def print_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    """A plain text table on stdout: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{h:<{widths[0]}}" if i == 0 else f"{h:>{widths[i]}}"
                     for i, h in enumerate(header))
    click.echo(line)
    click.echo("  ".join("-" * w for w in widths))
    for r in rows:
        click.echo("  ".join(f"{str(v):<{widths[0]}}" if i == 0 else f"{str(v):>{widths[i]}}"
                             for i, v in enumerate(r)))


scheduler_option = click.option(
    "--scheduler", default=None, metavar="ADDRESS",
    help="Dask scheduler to use (tcp://host:8786); default: a local cluster.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars or messages.")
categories_option = click.option(
    "--categories", type=click.Choice(["levels", "codes"]), default="levels", show_default=True,
    help="What the data holds for categorical features: the levels stored in the model (text "
    "such as 'HomeImp', or the numbers it was trained on; unknown levels are missing for "
    "LightGBM and refused for XGBoost, as the libraries do) or integer category codes.")
positive_label_option = click.option(
    "--positive-label", default=None, metavar="VALUE",
    help="The --target value that counts as the event (coded 1), e.g. 'bad', for text labels.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout (for scripts).")


# ------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="treeprune", prog_name="treeprune")
def cli() -> None:
    """Make legacy XGBoost/LightGBM ensembles small, prove it, and write them back."""


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@json_option
def inspect(model: str, as_json: bool) -> None:
    """Print a model's summary: trees, leaves, depths, features, objective."""
    ens = _load_model(model)
    if as_json:
        _emit_json(_model_json(ens, model))
        return
    click.echo(f"{model}")
    click.echo(ens.summary())


def _max_psi(text: str) -> float | str | None:
    if text.strip().lower() in ("auto", "none"):
        return None if text.strip().lower() == "none" else "auto"
    try:
        return float(text)
    except ValueError:
        raise CliError(f"--max-psi must be a number, auto or none; got {text!r}") from None


def _augment(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: give a multiple of the fit rows (a number) or "
                                 "'auto'", param_hint="--augment") from None


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="Validation data (CSV or Parquet), not the training set.")
@click.option("--target", default=None,
              help="Label column in the data (not needed with --metric fidelity).")
@positive_label_option
@click.option("--tolerance", type=float, default=None,
              help="Allowed loss of the metric on the judge rows (default 0.001; fidelity: "
                   "0.01 of Spearman).")
@click.option("--max-leaves", type=int, default=None,
              help="Leaf budget instead of a tolerance (the model's own size keeps every leaf).")
@click.option("--max-trees", type=int, default=None, help="Tree budget instead of a tolerance.")
@click.option("--metric", type=click.Choice(["auc", "gini", "ks", "loss", "fidelity"]),
              default=None,
              help="Metric that chooses (default auc for binary models, loss otherwise; "
                   "fidelity: keep the original's ranking, no labels needed).")
@click.option("--scale", type=click.Choice(["original", "calibrated"]), default=None,
              help="Keep the original's score scale (default with fidelity) or the fitted one.")
@click.option("--max-psi", default="auto", show_default=True,
              help="Only candidates whose scores shift by at most this PSI from the original's; "
                   "auto: 0.1 with --scale original; none: no limit.")
@click.option("--unlabeled", "unlabeled_path", type=click.Path(dir_okay=False), default=None,
              help="Extra rows without outcomes (CSV or Parquet) to fit on: the distilled "
                   "students, and every family with --metric fidelity.")
@click.option("--augment", default="auto", show_default=True,
              help="Synthetic rows to fit on (every family with --metric fidelity, the "
                   "distilled students otherwise), as a multiple of the fit rows (auto: 3, up "
                   "to 30,000 rows in all with fidelity, 10,000 otherwise; 0: none).")
@click.option("--monotone", default=None,
              help="Monotone constraints to keep: JSON ({\"age\": 1} or [1,0,-1]) or "
                   "name=+1,name=-1.")
@click.option("--cv", default="auto", show_default=True,
              help="Cross-fitting folds (1: one fit/judge split; auto: 3 below 20,000 rows).")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu",
              show_default=True, help="Where refits and the native trainers run.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Pruned model file (.json/.ubj XGBoost, .txt LightGBM).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the change report (.html, or .md for markdown).")
@click.option("--random-state", type=int, default=0, show_default=True,
              help="Seed of the fit/judge split.")
@categories_option
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@quiet_option
@json_option
def prune(model: str, data_path: str, target: str | None, positive_label: str | None,
          tolerance: float | None, max_leaves: int | None, max_trees: int | None,
          metric: str | None, scale: str | None, max_psi: str, unlabeled_path: str | None,
          augment: str, monotone: str | None, cv: str, device: str, out_path: str,
          report_path: str | None, random_state: int, categories: str, force: bool, quiet: bool,
          as_json: bool) -> None:
    """Prune MODEL on validation data and save the smaller model."""
    from .pruning import prune as run_prune

    if target is None and metric != "fidelity":
        raise click.UsageError("--target names the label column; without labels use "
                               "--metric fidelity")
    folds = _parse_cv(cv)
    synthetic = _augment(augment)
    constraints = _parse_monotone(monotone)

    budgets = [n for n, v in (("--tolerance", tolerance), ("--max-leaves", max_leaves),
                              ("--max-trees", max_trees)) if v is not None]
    if len(budgets) > 1:
        raise click.UsageError(f"give only one of --tolerance, --max-leaves, --max-trees "
                               f"(got {', '.join(budgets)})")
    inputs = [Path(model), Path(data_path)]
    out = Path(out_path)
    _check_output(out, force, inputs)
    report = Path(report_path) if report_path else None
    if report is not None:
        if report.resolve() == out.resolve():
            raise CliError("--report and --out name the same file")
        _check_report_out(report)
        _check_output(report, force, inputs, "report")
    say(quiet, f"loading {model}")
    ens = _load_model(model)
    _check_model_out(ens, out)
    say(quiet, f"reading {data_path}")
    X, y = _read_rows(data_path, target, [ens], categories)
    X_unlabeled = None
    if unlabeled_path is not None:
        say(quiet, f"reading {unlabeled_path}")
        X_unlabeled, _ = _read_rows(unlabeled_path, None, [ens], categories)
        if target is not None and target in X_unlabeled.columns:
            X_unlabeled = X_unlabeled.drop(columns=[target])
    result = run_prune(ens, X, y, tolerance=tolerance, max_leaves=max_leaves,
                       max_trees=max_trees, metric=metric, random_state=random_state,
                       positive_label=positive_label, scale=scale, max_psi=_max_psi(max_psi),
                       X_unlabeled=X_unlabeled, augment=synthetic,
                       monotone_constraints=constraints, cv=folds, device=device,
                       progress=not quiet)
    result.model.save(out, overwrite=True)
    say(quiet, f"wrote {out}")
    if report is not None:
        result.report(report)
        say(quiet, f"wrote {report}")
    warnings = list(getattr(result, "warnings", []))
    if as_json:
        from .report import manifest

        _emit_json({
            "summary": result.summary(),
            "output": str(out),
            "report": None if report is None else str(report),
            "metric": result.metric,
            "original_metric": result.original_metric,
            "pruned_metric": result.chosen_metric,
            "rows": {"fit": int(len(result.fit_index)), "judge": int(len(result.judge_index))},
            "original": {"n_trees": ens.n_trees, "n_leaves": ens.n_leaves},
            "pruned": {"n_trees": result.model.n_trees, "n_leaves": result.model.n_leaves},
            "warnings": warnings,
            "manifest": manifest(result),
        })
    else:
        click.echo(result.summary())
    for message in warnings:  # on stderr, even with --quiet or --json: they change the reading
        click.echo(f"treeprune: warning: {message}", err=True)


@cli.command()
@click.argument("model_a", metavar="A", type=click.Path(dir_okay=False))
@click.argument("model_b", metavar="B", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="Rows to score (CSV or Parquet).")
@click.option("--target", default=None, help="Label column (metrics and bad rates need it).")
@positive_label_option
@click.option("--output", type=click.Choice(["prediction", "margin"]), default="prediction",
              show_default=True, help="Compare probabilities/predictions or margins.")
@categories_option
@scheduler_option
@quiet_option
@json_option
def compare(model_a: str, model_b: str, data_path: str, target: str | None,
            positive_label: str | None, output: str, categories: str, scheduler: str | None,
            quiet: bool, as_json: bool) -> None:
    """Compare two models on the same rows: metrics, correlations, PSI, swap sets.

    A --data glob ('big/*.parquet') is scored on a dask cluster (treeprune[dask]).
    """
    from .comparison import compare as run_compare

    a, b = _load_model(model_a), _load_model(model_b)
    if positive_label is not None and target is None:
        raise click.UsageError("--positive-label needs --target")
    if _is_glob(data_path):
        from .scaleout._batch import read_parquet_glob
        from .scaleout._cluster import cluster_client

        with cluster_client(scheduler):
            X, y = _split_target_dask(read_parquet_glob(data_path), target, data_path)
            say(quiet, f"comparing {model_a} (A) with {model_b} (B) on {data_path} "
                       f"({X.npartitions} partitions)")
            cmp = run_compare(a, b, X, y, output=output, positive_label=positive_label)
    else:
        X, y = _read_rows(data_path, target, [a, b], categories)
        say(quiet, f"comparing {model_a} (A) with {model_b} (B) on {len(X):,} rows")
        cmp = run_compare(a, b, X, y, output=output, positive_label=positive_label)
    if as_json:
        _emit_json({"a": model_a, "b": model_b, **cmp.to_dict()})
        return
    click.echo(str(cmp))


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="Rows to score (CSV or Parquet).")
@click.option("--rows", type=click.IntRange(min=1), default=None,
              help="Use the first N rows for the batch timing (default: all).")
@click.option("--target", default=None, help="A label column to drop from the data.")
@click.option("--repeats", type=click.IntRange(min=1), default=300, show_default=True,
              help="Single-row predictions timed (the median is reported).")
@categories_option
@quiet_option
@json_option
def bench(model: str, data_path: str, rows: int | None, target: str | None, repeats: int,
          categories: str, quiet: bool, as_json: bool) -> None:
    """Single-row and batch latency: treeprune against the native library.

    Single row: median seconds of one-row predictions (one native thread). Batch: best seconds
    of predicting every row (native on every core). --json gives every time in seconds.
    """
    from .data import to_matrix
    from .latency import latency

    ens = _load_model(model)
    frame, _ = _read_rows(data_path, target, [ens], categories)
    if rows is not None:
        frame = frame.iloc[:rows]
    X = to_matrix(ens, frame, np.float64)
    if len(X) == 0:
        raise DataError(f"data file {data_path} has no rows")
    say(quiet, f"timing {ens.n_trees} trees on {len(X):,} rows")
    res = latency(ens, X, model_path=model, single_calls=repeats)
    res["model"] = model
    if as_json:
        _emit_json(res)
        return
    table = []
    for name in ("treeprune", "native"):
        r = res.get(name, {})
        if "error" in r:
            table.append((name, "n/a", "n/a", "n/a"))
            continue
        table.append((name, f"{r['single_row_s'] * 1e6:.1f}", f"{r['batch_s'] * 1e3:.2f}",
                      f"{r['rows_per_s']:,.0f}"))
    click.echo(f"{model}: {ens.n_trees} trees, {ens.n_leaves} leaves; batch of {len(X):,} rows")
    print_table(table, ("", "single row (us)", "batch (ms)", "rows/s"))
    if "error" in res.get("native", {}):
        click.echo(f"native: {res['native']['error']}")


@cli.command("upgrade")
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", type=click.Path(dir_okay=False), default=None,
              help="Check on these rows (CSV/Parquet, the model's feature columns) instead of "
                   "probe rows built from the model's split thresholds.")
@click.option("--force", is_flag=True, help="Overwrite an existing NEW file.")
@categories_option
@json_option
def upgrade_cmd(old: str, new: str, data_path: str | None, force: bool, categories: str,
                as_json: bool) -> None:
    """Rewrite a legacy model in today's format with the same scores, and print the check."""
    from .upgrade import upgrade

    _check_output(Path(new), force, [Path(old)])
    X = None
    if data_path is not None:
        X, _ = _read_rows(data_path, None, [_load_model(old)], categories)
    check = upgrade(old, new, X=X, overwrite=force)
    if as_json:
        _emit_json({"source": check.source, "target": check.target,
                    "written_by": check.written_by, "rules": list(check.notes),
                    "checked_with": check.checked_with, "rows": check.n_rows,
                    "trees": check.n_trees, "trees_same_leaves": check.trees_same_leaves,
                    "max_abs_diff": check.max_abs_diff,
                    "reread_max_abs_diff": check.reread_max_abs_diff, "ok": check.ok})
        return
    for line in check.lines():
        click.echo(line)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", required=True,
              help="Rows to score: a CSV or Parquet file, or Parquet files on a dask cluster (a "
              "glob such as 'portfolio/*.parquet' or a folder; treeprune[dask]).")
@click.option("--out", "out_path", default=None,
              help="A .csv or .parquet file for the scores (default CSV on stdout); for a glob, "
              "a folder for one scored Parquet file per input partition.")
@click.option("--output", "outputs", type=click.Choice(["prediction", "margin", "score"]),
              multiple=True, help="Columns to write (repeatable; default prediction). score: "
              "scorecard points (binary models), with the model's saved scorecard or --pdo, "
              "--base-score, --base-odds.")
@click.option("--keep", multiple=True, metavar="COLUMN",
              help="Copy this input column into the output (repeatable), e.g. an id.")
@click.option("--pdo", type=float, default=None, help="Scorecard points to double the odds "
              "(default: the model's saved scorecard, else 20).")
@click.option("--base-score", type=float, default=None, help="Scorecard base score (600).")
@click.option("--base-odds", type=float, default=None, help="Good:bad odds at the base score (50).")
@categories_option
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local dask cluster (default: one per CPU).")
@scheduler_option
@click.option("--force", is_flag=True, help="Overwrite an existing --out file (or write into a "
              "folder that already holds files).")
@quiet_option
def score(model: str, data_path: str, out_path: str | None, outputs: tuple[str, ...],
          keep: tuple[str, ...], pdo: float | None, base_score: float | None,
          base_odds: float | None, categories: str, workers: int | None, scheduler: str | None,
          force: bool, quiet: bool) -> None:
    """Score every row of a data file with MODEL (one output row per input row, in order).

    A glob or a folder of Parquet files (or --scheduler / --workers, or an --out folder) is
    scored on a dask cluster into one Parquet file per input partition (treeprune[dask]).
    """
    out_file = out_path is not None and Path(out_path).suffix.lower() in (".csv", ".parquet",
                                                                          ".pq")
    if (_is_glob(data_path) or Path(data_path).is_dir() or scheduler or workers
            or (out_path is not None and not out_file)):
        if out_path is None:
            raise CliError("scoring on a cluster needs --out FOLDER")
        if len(outputs) > 1 or any(v is not None for v in (pdo, base_score, base_odds)):
            raise CliError("scoring on a cluster writes one --output, with the model's scorecard")
        _score_cluster(model, data_path, out_path, outputs[0] if outputs else "prediction", keep,
                       workers, scheduler, force, quiet)
        return
    _score_file(model, data_path, out_path, outputs, keep, pdo, base_score, base_odds,
                categories, force, quiet)


def _score_cluster(model: str, data_path: str, out_dir: str, output: str, keep: tuple[str, ...],
                   workers: int | None, scheduler: str | None, force: bool, quiet: bool) -> None:
    """Score Parquet files on a dask cluster into Parquet files (treeprune[dask])."""
    from .scaleout._batch import read_parquet_glob, score_to_parquet
    from .scaleout._cluster import cluster_client

    ens = _load_model(model)
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise CliError(f"--out must be a folder: {folder}")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise CliError(f"output folder {folder} is not empty; pass --force to write into it")
    data = read_parquet_glob(data_path)
    ens.predict(data._meta, output=output)  # columns and types, on the metadata
    folder.mkdir(parents=True, exist_ok=True)
    with cluster_client(scheduler, workers) as client:
        say(quiet, f"scoring {data_path} ({data.npartitions} partitions) on "
                    f"{len(client.scheduler_info()['workers'])} workers")
        t0 = time.perf_counter()
        rows = score_to_parquet(ens, data, folder, client, output=output, keep=keep,
                                progress=not quiet)
    say(quiet, f"scored {rows:,} rows in {time.perf_counter() - t0:.1f}s into {folder}")


def _score_file(model: str, data_path: str, out_path: str | None, outputs: tuple[str, ...],
                keep: tuple[str, ...], pdo: float | None, base_score: float | None,
                base_odds: float | None, categories: str, force: bool, quiet: bool) -> None:
    """Score one CSV/Parquet file in memory; the scores to a file or CSV on stdout."""
    import pandas as pd

    from .io._files import atomic_write_bytes

    out = Path(out_path) if out_path else None
    if out is not None:
        _check_output(out, force, [Path(model), Path(data_path)])
        if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise CliError(f"--out {out.name}: scores are written as .csv or .parquet")
    ens = _load_model(model)
    frame = read_data(data_path)
    missing = [c for c in keep if c not in frame.columns]
    if missing:
        from .data import close_matches

        raise DataError(f"--keep column(s) {', '.join(map(repr, missing))} not in {data_path}"
                        f"{close_matches(missing, [str(c) for c in frame.columns])}")
    X = frame
    if categories == "levels":
        from .data import encode_levels

        X = encode_levels(ens, frame)
    result = pd.DataFrame({c: frame[c] for c in keep})
    for kind in outputs or ("prediction",):
        if kind == "score":
            if not ens.objective.is_binary:
                raise CliError("--output score needs a binary model (scorecard points)")
            values = _scorecard(ens, pdo, base_score, base_odds).score_from_margin(
                ens.predict(X, output="margin"))
        else:
            values = ens.predict(X, output=kind)
        values = np.asarray(values)
        if values.ndim == 2:
            for k in range(values.shape[1]):
                result[f"{kind}_{k}"] = values[:, k]
        else:
            result[kind] = values
    say(quiet, f"scored {len(result):,} rows with {model}")
    if out is None:
        click.echo(result.to_csv(index=False), nl=False)
        return
    if out.suffix.lower() == ".csv":
        data = result.to_csv(index=False).encode("utf-8")
    else:
        import io as _io

        buf = _io.BytesIO()
        result.to_parquet(buf, index=False)
        data = buf.getvalue()
    atomic_write_bytes(out, data, overwrite=True, protect=ens.source_meta.get("source_path"))
    say(quiet, f"wrote {out}")


def _scorecard(ens: Any, pdo: float | None, base_score: float | None,
               base_odds: float | None) -> Any:
    """The model's saved scorecard with any of its settings overridden (default Scorecard())."""
    import dataclasses

    from .scorecard import Scorecard

    saved = ens.scorecard or Scorecard()
    changes = {k: v for k, v in (("pdo", pdo), ("base_score", base_score),
                                 ("base_odds", base_odds)) if v is not None}
    return dataclasses.replace(saved, **changes) if changes else saved


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _split_target_dask(frame: Any, target: str | None, path: str) -> tuple[Any, Any]:
    if target is None:
        return frame, None
    if target not in frame.columns:
        shown = ", ".join(map(str, list(frame.columns)[:10]))
        raise DataError(f"target column {target!r} not in {path} (columns: {shown})")
    return frame.drop(columns=[target]), frame[target]


@cli.command("export-sql")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--table", required=True, help="Table whose columns are the model's features.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write the SQL here instead of stdout.")
@click.option("--dialect", type=click.Choice(["sqlite", "postgresql"]), default="sqlite",
              show_default=True)
@click.option("--order-by", default=None, help="Column that orders the rows (default rowid in "
              "SQLite).")
@click.option("--pdo", type=float, default=20.0, show_default=True, help="Scorecard points to "
              "double the odds.")
@click.option("--base-score", type=float, default=600.0, show_default=True)
@click.option("--base-odds", type=float, default=50.0, show_default=True,
              help="Good:bad odds at the base score.")
@click.option("--categories", type=click.Choice(["levels", "codes"]), default="levels",
              show_default=True, help="What the table holds for categorical features: the "
              "levels stored in the model (text such as 'HomeImp'; the SQL maps them to codes "
              "and its header lists the mapping) or integer category codes.")
@click.option("--reasons", type=click.IntRange(min=1), default=None,
              help="Also each feature's contribution (contrib_<feature>) and the top K reasons "
              "(reason_1, contribution_1, ...) per row; small models only.")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@quiet_option
def export_sql(model: str, table: str, out_path: str | None, dialect: str, order_by: str | None,
               pdo: float, base_score: float, base_odds: float, categories: str,
               reasons: int | None, force: bool, quiet: bool) -> None:
    """Write MODEL as one SQL query: margin, probability and score per row of TABLE."""
    from .io._files import atomic_write_bytes
    from .scorecard import Scorecard
    from .sql import to_sql

    if out_path is not None:
        _check_output(Path(out_path), force, [Path(model)])
    ens = _load_model(model)
    scorecard = Scorecard(pdo=pdo, base_score=base_score, base_odds=base_odds)
    sql = to_sql(ens, table, scorecard=scorecard if ens.objective.is_binary else None,
                 dialect=dialect, order_by=order_by, categories=categories, reasons=reasons)
    if out_path is None:
        click.echo(sql, nl=False)
        return
    atomic_write_bytes(Path(out_path), sql.encode("utf-8"), overwrite=True,
                       protect=ens.source_meta.get("source_path"))
    say(quiet, f"wrote {out_path} ({len(sql):,} characters)")


@cli.command()
@click.option("--out-dir", type=click.Path(file_okay=False), default="demo_output",
              show_default=True, help="Folder for the models and the report.")
@click.option("--trees", type=click.IntRange(min=1), default=400, show_default=True,
              help="Trees of the legacy model.")
@click.option("--force", is_flag=True, help="Write into a folder that holds other files.")
@quiet_option
def demo(out_dir: str, trees: int, force: bool, quiet: bool) -> None:
    """The whole job on the embedded Taiwan credit data, start to finish.

    Trains a legacy XGBoost model (depth 6, eta 0.05) on 60% of the rows, loads it, checks it
    against XGBoost, prunes it on a 20% prune part, compares both on the last 20% and saves the
    pruned model (XGBoost JSON) and the report next to the original in OUT_DIR.
    """
    from .demo import run_demo

    run_demo(Path(out_dir), n_trees=trees, force=force, quiet=quiet)


# ------------------------------------------------------------------------------------------------
# reason codes
# ------------------------------------------------------------------------------------------------
def _read_mapping(path: str | None, what: str) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {what} file {path}: {_one_line(exc)}") from exc
    if not isinstance(value, dict):
        raise CliError(f"{what} file {path} must hold a JSON object")
    return value


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="Applicants to explain (CSV or Parquet).")
@click.option("--k", type=click.IntRange(min=1), default=4, show_default=True,
              help="Reasons per row.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Parquet (.parquet) or CSV file for the reasons.")
@click.option("--target", default=None, help="A label column to drop from the data.")
@click.option("--threshold", type=float, default=0.0, show_default=True,
              help="A reason must move the margin the adverse way by more than this.")
@click.option("--direction", type=click.Choice(["increase_risk", "decrease_risk"]),
              default="increase_risk", show_default=True,
              help="Whether the margin grows with the risk (a probability of default).")
@click.option("--groups", "groups_path", type=click.Path(dir_okay=False), default=None,
              help='JSON object {"reason": ["feature", ...]}: related features as one reason.')
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), default=None,
              help='JSON object {"reason": "text"}: human-readable reasons.')
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@quiet_option
def explain(model: str, data_path: str, k: int, out_path: str, target: str | None,
            threshold: float, direction: str, groups_path: str | None, labels_path: str | None,
            force: bool, quiet: bool) -> None:
    """Top-K reasons per row of FILE: the features that push MODEL's risk up the most."""
    import io as _io

    from .io._files import atomic_write_bytes
    from .reasons import reason_codes, reason_frequencies

    out = Path(out_path)
    _check_output(out, force, [Path(model), Path(data_path)])
    ens = _load_model(model)
    X, _ = _split_target(read_data(data_path), target, data_path)
    frame = reason_codes(ens, X, k, threshold=threshold, direction=direction,
                         groups=_read_mapping(groups_path, "groups"),
                         labels=_read_mapping(labels_path, "labels"))
    buf = _io.BytesIO()
    if out.name.lower().endswith((".csv", ".csv.gz")):
        frame.to_csv(buf, index=False, compression="gzip" if out.name.endswith(".gz") else None)
    else:
        frame.to_parquet(buf, index=False)
    atomic_write_bytes(out, buf.getvalue(), overwrite=True,
                       protect=ens.source_meta.get("source_path"))
    top = reason_frequencies(frame[["reason_1"]]).head(3)
    shown = ", ".join(f"{r} ({c:,})" for r, c in top.items()) or "none"
    say(quiet, f"wrote {out_path}: {len(frame):,} rows, {k} reasons each; most frequent first "
                f"reasons: {shown}")


# ------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


_NO_ARGS_IS_HELP: type[BaseException] = getattr(click.exceptions, "NoArgsIsHelpError",
                                                 type("_Never", (Exception,), {}))


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns (and, as a console script, exits with) the status."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = bool(os.environ.get("TREEPRUNE_DEBUG"))
    # the commands print the library's warnings themselves (PruneResult.warnings), once
    logging.getLogger("treeprune").setLevel(logging.DEBUG if debug else logging.ERROR)
    try:
        rv = cli.main(args=args, prog_name="treeprune", standalone_mode=False)
        return int(rv) if isinstance(rv, int) else 0
    except _NO_ARGS_IS_HELP as exc:  # click >= 8.2: a bare `treeprune` shows the help
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        return EXIT_USAGE
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"treeprune: error: {_one_line(exc.format_message())}{hint}", err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"treeprune: error: {_one_line(exc.format_message())}", err=True)
        return exc.exit_code or EXIT_FAILURE
    except click.exceptions.Abort:
        click.echo("treeprune: error: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("treeprune: error: interrupted", err=True)
        return 130
    except BaseException as exc:  # every failure is one line, never a traceback
        if isinstance(exc, SystemExit):
            return int(exc.code) if isinstance(exc.code, int) else EXIT_FAILURE
        if debug:
            import traceback

            traceback.print_exc()
        if isinstance(exc, (CliError, *_USAGE_ERRORS)):
            status = EXIT_USAGE
        elif isinstance(exc, FileNotFoundError):
            status = EXIT_USAGE
        else:
            status = EXIT_FAILURE
        if isinstance(exc, (TreePruneError, OSError)):
            message = _one_line(exc)
            if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
                message = f"{message}: {exc.filename}"
        elif isinstance(exc, MemoryError):
            message = "out of memory"
        else:
            message = f"unexpected {type(exc).__name__}: {_one_line(exc)}"
        click.echo(f"treeprune: error: {message}", err=True)
        return status


__all__ = ["CliError", "cli", "main", "print_table", "read_data", "say"]
