"""Metrics the predictors are trained and judged by (numpy only): the pinball loss of a quantile
forecast, and ranking metrics for conflict predictions (ties handled as one threshold)."""

from __future__ import annotations

import numpy as np


def pinball_losses(y: np.ndarray, q: np.ndarray, alpha: float) -> np.ndarray:
    """Element-wise pinball (quantile) loss of forecasting ``y`` by its ``alpha`` quantile ``q``."""
    diff = y - q
    return np.maximum(alpha * diff, (alpha - 1.0) * diff)


def precision_recall(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and threshold at every distinct score, highest threshold first."""
    y = np.asarray(y, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    s, t = score[order], y[order]
    tp = np.cumsum(t)
    fp = np.cumsum(~t)
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1] if len(s) else np.zeros(0, int)
    tp, fp = tp[last_of_tie], fp[last_of_tie]
    positives = max(int(y.sum()), 1)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / positives
    return precision, recall, s[last_of_tie]


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall curve (step-wise, as scikit-learn's average precision)."""
    if not np.any(y):
        return float("nan")
    precision, recall, _ = precision_recall(y, score)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def recall_at_precision(y: np.ndarray, score: np.ndarray, target: float = 0.8) -> tuple[float, float]:
    """Highest recall with precision >= ``target`` and the threshold giving it (0, inf if none)."""
    if not np.any(y):
        return float("nan"), float("inf")
    precision, recall, thresholds = precision_recall(y, score)
    ok = precision >= target
    if not ok.any():
        return 0.0, float("inf")
    best = int(np.argmax(np.where(ok, recall, -1.0)))
    return float(recall[best]), float(thresholds[best])
