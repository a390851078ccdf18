"""Every figure builder also takes a result object (a TraceResults, or a TraceScores from `score_trace`) in place of
its arrays: `accepts_results` picks the arrays, texts and tags out of it, so `viz.importance_bars(scores)` works.
The builders themselves stay array-in, figure-out."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd

F = TypeVar("F", bound=Callable[..., Any])
Pick = Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]]  # (results, kwargs) -> (first argument, kwargs)


def is_result(value: Any) -> bool:
    return hasattr(value, "to_pandas") and not isinstance(value, (pd.Series, pd.DataFrame, np.ndarray, list, tuple))


def accepts_results(pick: Pick) -> Callable[[F], F]:
    def decorate(builder: F) -> F:
        @functools.wraps(builder)
        def wrapper(first: Any, *args: Any, **kwargs: Any) -> Any:
            if is_result(first):
                from anchors.results import as_trace_results  # results sit below viz: imported on use only

                first, kwargs = pick(as_trace_results(first), kwargs)
            return builder(first, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _metric(results: Any, kwargs: dict[str, Any]) -> str:
    metric = kwargs.pop("metric", None) or results.headline_metric
    if metric is None or metric not in results.sentences.columns:
        raise ValueError(f"{results.trace_id}: no metric {metric!r} to plot (have: {', '.join(results.metrics) or 'none'})")
    return metric


def per_sentence(results: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A metric per sentence (`metric=`, default the headline) with texts, tags and its interval."""
    from anchors.viz.style import metric_label

    metric = _metric(results, kwargs)
    extra: dict[str, Any] = {"sentences": results.texts(), "tags": results.tags(), "label": metric_label(metric)}
    bounds = results.interval(metric)
    if bounds is not None:
        extra["lower"], extra["upper"] = bounds
    return results.sentences[metric].to_numpy(float), {**extra, **kwargs}


def by_position(results: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from anchors.viz.style import metric_label

    metric = _metric(results, kwargs)
    extra = {"sentences": results.texts(), "tags": results.tags(), "label": metric_label(metric)}
    return results.sentences[metric].to_numpy(float), {**extra, **kwargs}


def matrix(results: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A sentence×sentence matrix (`name=`: resampling or suppression; default the first present)."""
    name = kwargs.pop("name", None) or next(iter(results.matrices), None)
    if name is None or name not in results.matrices:
        raise ValueError(f"{results.trace_id}: no {name or 'sentence'} matrix (have: {', '.join(results.matrices) or 'none'})")
    return results.matrices[name], kwargs


def graph(results: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    picked, rest = matrix(results, kwargs)
    metric = results.headline_metric
    sizes = results.sentences[metric].to_numpy(float) if metric else None
    return picked, {"sentences": results.texts(), "tags": results.tags(), "importance": sizes, **rest}


def heads(results: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    if results.head_scores is None:
        raise ValueError(f"{results.trace_id}: no receiver-head results")
    return results.head_scores, {"highlight": results.receiver_heads, **kwargs}


def receiver_scores(results: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    if "receiver_score" not in results.sentences.columns:
        raise ValueError(f"{results.trace_id}: no receiver scores")
    return results.sentences["receiver_score"].to_numpy(float), {"sentences": results.texts(), "tags": results.tags(), **kwargs}


def importances(results: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    return results.importances(), {"sentences": results.texts(), "tags": results.tags(), **kwargs}


def early_answering(results: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    if results.early_answering is None:
        raise ValueError(f"{results.trace_id}: no early-answering results")
    return results.early_answering, kwargs


def patching(results: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    if results.patching is None:
        raise ValueError(f"{results.trace_id}: no activation-patching results")
    site = kwargs.pop("site", 0)
    return np.asarray(results.patching["kl"], dtype=float)[site], {"sentences": results.texts(), **kwargs}
