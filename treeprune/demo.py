"""``treeprune demo``: the whole job on the embedded Taiwan credit data, start to finish.

Trains a legacy XGBoost model on 60% of the rows, loads it, checks it against XGBoost, prunes it
on a 20% prune part, compares both on the last 20% (metrics and latency) and saves the pruned
model and the report next to the original.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from .cli import CliError, print_table, say

#: A file that marks a folder as written by the demo (a later run may write there again).
DEMO_MARKER = ".treeprune-demo"


def _prepare_out_dir(folder: Path, force: bool, names: list[str]) -> None:
    if folder.exists() and not folder.is_dir():
        raise CliError(f"--out-dir is a file: {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / DEMO_MARKER
    clash = [n for n in names if (folder / n).exists()]
    if clash and not marker.exists() and not force:
        raise CliError(f"{folder} already holds {', '.join(clash)} (not from a demo run); "
                       "pass --force or choose another --out-dir")
    marker.write_text("files in this folder were written by `treeprune demo`\n")


def run_demo(out_dir: Path, n_trees: int = 400, force: bool = False,
             quiet: bool = False) -> dict[str, Any]:
    """What ``treeprune demo`` does; returns the numbers it prints (and the file paths).

    Parameters
    ----------
    out_dir : path
        Folder for the legacy model, the pruned model and the report.
    n_trees : int
        Trees of the legacy model.
    force : bool
        Write into a folder that holds files of the same names not written by a demo run.
    quiet : bool
        No progress messages on stderr.

    Returns
    -------
    dict
        ``rows`` (per model: size, test metrics, latencies), agreement figures and file paths.
    """
    import xgboost as xgb
    from sklearn.model_selection import train_test_split

    from ._fidelity import agreement
    from .datasets import load_taiwan
    from .io import load
    from .latency import latency, single_row_seconds
    from .metrics import auc, gini, ks, psi
    from .pruning import prune as run_prune

    out_dir = Path(out_dir)
    names = ["legacy_model.json", "pruned_model.json", "report.html"]
    _prepare_out_dir(out_dir, force, names)
    legacy_path, pruned_path, report_path = (out_dir / n for n in names)
    echo = click.echo
    t0 = time.perf_counter()

    X, y = load_taiwan()
    idx = np.arange(len(y))
    train_idx, rest = train_test_split(idx, train_size=0.6, random_state=0, stratify=y)
    prune_idx, test_idx = train_test_split(rest, test_size=0.5, random_state=0,
                                           stratify=y.iloc[rest])
    Xtr, ytr = X.iloc[train_idx], y.iloc[train_idx]
    Xpr, ypr = X.iloc[prune_idx], y.iloc[prune_idx]
    Xte, yte = X.iloc[test_idx], y.iloc[test_idx].to_numpy()
    echo(f"Taiwan credit default data: {len(y):,} rows, {X.shape[1]} features, "
         f"{y.mean():.1%} defaults; train {len(train_idx):,} / prune {len(prune_idx):,} / "
         f"test {len(test_idx):,}")

    say(quiet, f"training the legacy model: XGBoost, {n_trees} trees, depth 6, eta 0.05 ...")
    t = time.perf_counter()
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.05, "subsample": 0.8,
              "colsample_bytree": 0.8, "min_child_weight": 5, "tree_method": "hist",
              "nthread": os.cpu_count() or 1, "seed": 0, "verbosity": 0}
    booster = xgb.train(params, xgb.DMatrix(Xtr, ytr), num_boost_round=n_trees)
    booster.save_model(str(legacy_path))
    echo(f"trained and saved {legacy_path} in {time.perf_counter() - t:.1f}s")

    echo("")
    echo("== the legacy model, as treeprune reads it ==")
    ens = load(legacy_path)
    echo(ens.summary())

    native = xgb.Booster(model_file=str(legacy_path))
    dte = xgb.DMatrix(Xte)
    native_margin = native.predict(dte, output_margin=True)
    native_leaf = native.predict(dte, pred_leaf=True).astype(np.int64)
    tp_margin = ens.predict(Xte, output="margin")
    tp_leaf = ens.predict(Xte, output="leaf")
    max_diff = float(np.max(np.abs(native_margin - tp_margin)))
    leaf_agree = float(np.mean(native_leaf == tp_leaf))
    echo("")
    echo(f"agreement with XGBoost on {len(Xte):,} test rows: max |margin diff| {max_diff:.2e}, "
         f"leaf indices identical for {leaf_agree:.4%} of (row, tree) pairs")

    echo("")
    say(quiet, "pruning on the prune part (tolerance 0.001 AUC, cross-fitted; keeping the "
               "original's score scale) ...")
    # scale="original": the cutoffs set on the legacy score stay where they are (PSI near 0)
    result = run_prune(ens, Xpr, ypr, tolerance=0.001, scale="original", random_state=0,
                       progress=not quiet)
    echo(result.summary())
    for message in getattr(result, "warnings", ()):
        echo(f"warning: {message}")
    pruned = result.model
    pruned.save(pruned_path, overwrite=True)

    # the pruned model as production would read it: native XGBoost on the saved file
    native_pruned = xgb.Booster(model_file=str(pruned_path))
    reload_diff = float(np.max(np.abs(native_pruned.predict(dte, output_margin=True)
                                      - pruned.predict(Xte, output="margin"))))

    Xm = np.ascontiguousarray(Xte.to_numpy(dtype=np.float64))
    rows = {}
    for label, model, path in (("original", ens, legacy_path), ("pruned", pruned, pruned_path)):
        score = model.predict(Xte)
        lat = latency(model, Xm[:2000], model_path=str(path), single_calls=300,
                      batch_repeats=1)
        # what a scoring service would call: the predictor set up once, one numpy row a call
        lean = model.predictor()
        rows[label] = {
            "predictor_us": single_row_seconds(lambda r, f=lean: f(r[0]), Xm[:2000], 300) * 1e6,
            "trees": model.n_trees,
            "leaves": model.n_leaves,
            "auc": auc(yte, score),
            "gini": gini(yte, score),
            "ks": ks(yte, score),
            "latency_us": lat["treeprune"]["single_row_s"] * 1e6,
            "native_latency_us": lat["native"].get("single_row_s", math.nan) * 1e6,
        }
    echo("")
    echo(f"== before / after on the {len(Xte):,} test rows ==")
    fmt = {"trees": "{:,}", "leaves": "{:,}", "auc": "{:.4f}", "gini": "{:.4f}", "ks": "{:.4f}",
           "latency_us": "{:.1f}", "predictor_us": "{:.1f}", "native_latency_us": "{:.1f}"}
    labels = {"trees": "trees", "leaves": "leaves", "auc": "test AUC", "gini": "test Gini",
              "ks": "test KS", "latency_us": "single-row latency, treeprune predict (us)",
              "predictor_us": "single-row latency, treeprune predictor() (us)",
              "native_latency_us": "single-row latency, XGBoost (us)"}
    table = [(labels[k], fmt[k].format(rows["original"][k]), fmt[k].format(rows["pruned"][k]))
             for k in fmt]
    print_table(table, ("", "original", "pruned"))
    m_orig, m_pruned = ens.predict(Xm, output="margin"), pruned.predict(Xm, output="margin")
    stability = {"psi": psi(m_orig, m_pruned).value,
                 "agreement_50": agreement(m_orig, m_pruned, 0.5),
                 "agreement_80": agreement(m_orig, m_pruned, 0.8)}
    echo(f"pruned vs original on the test rows: score PSI {stability['psi']:.4f}, the same "
         f"decision for {stability['agreement_50']:.1%} of applicants at 50% approval and "
         f"{stability['agreement_80']:.1%} at 80%")

    echo("")
    echo(f"pruned model saved as XGBoost JSON: {pruned_path} (XGBoost reloads it: max |margin "
         f"diff| {reload_diff:.2e})")
    result.report(report_path, X=Xte, y=yte)
    echo(f"report: {report_path}")
    echo(f"done in {time.perf_counter() - t0:.1f}s")
    return {"rows": rows, "max_margin_diff": max_diff, "leaf_agreement": leaf_agree,
            "reload_diff": reload_diff, "stability": stability, "legacy": str(legacy_path),
            "pruned": str(pruned_path),
            "report": str(report_path)}


__all__ = ["DEMO_MARKER", "run_demo"]
