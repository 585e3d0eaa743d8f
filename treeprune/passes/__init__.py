"""Passes: pure functions ``Ensemble -> Ensemble``, each appending a PassRecord to the history."""

__all__: list[str] = []
