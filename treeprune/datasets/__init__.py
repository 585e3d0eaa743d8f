"""Embedded demo data: the Taiwan credit card default data (UCI, CC BY 4.0).

See ``TAIWAN_SOURCE.md`` in this folder for the source, citation and license.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

TAIWAN_TARGET = "default"


def load_taiwan(as_frame: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """Load the Taiwan credit card default data shipped with treeprune.

    Returns
    -------
    X : pandas.DataFrame, shape (30000, 23)
        Credit limit, demographics, repayment status, bill and payment amounts (Apr–Sep 2005).
    y : pandas.Series
        ``default``: 1 if the client defaulted on the next month's payment.

    Notes
    -----
    Yeh, I. C., & Lien, C. H. (2009), Expert Systems with Applications 36(2), 2473-2480.
    UCI Machine Learning Repository, CC BY 4.0.
    """
    path = resources.files(__package__).joinpath("taiwan_credit_default.csv.gz")
    with resources.as_file(path) as p:
        df = pd.read_csv(p)
    y = df.pop(TAIWAN_TARGET)
    return df, y


__all__ = ["load_taiwan", "TAIWAN_TARGET"]
