"""Classification metrics, overall and per group (corpus, speaker gender), and the report.

``evaluate`` returns a JSON-ready dict: accuracy; per-class, macro and weighted precision,
recall and F1; UAR (unweighted average recall = macro recall, the usual SER headline since
classes are imbalanced); the confusion matrix; expected calibration error; and the same
per group value with the largest gap between groups named. ``write_evaluation_report`` writes
``metrics.json``, ``report.md``, ``confusion_matrix.csv``/``.png`` and
``reliability.png`` (matplotlib, Agg backend) into one folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """ECE: |accuracy - confidence| per confidence bin, weighted by the bin's share of samples."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def _core_metrics(y_true: np.ndarray, proba: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    k = len(labels)
    y_pred = proba.argmax(axis=1)
    present = np.unique(y_true)
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=np.arange(k), zero_division=0)
    macro = {"precision": float(p[present].mean()), "recall": float(r[present].mean()), "f1": float(f[present].mean())}
    weights = support / max(support.sum(), 1)
    weighted = {"precision": float((p * weights).sum()), "recall": float((r * weights).sum()), "f1": float((f * weights).sum())}
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else float("nan"),
        "uar": macro["recall"],
        "macro": macro,
        "weighted": weighted,
        "per_class": {
            labels[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i in range(k)
        },
        "ece": expected_calibration_error(y_true, proba),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=np.arange(k)).tolist(),
    }


def evaluate(
    y_true: Sequence[int],
    proba: np.ndarray,
    labels: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Metrics for class indices ``y_true`` (n,) against probabilities ``proba`` (n, K).

    UAR and the macro averages are taken over the classes present in ``y_true``.
    ``groups``: e.g. ``{"corpus": [...], "gender": [...]}``, each of length n; for each,
    metrics per value and ``largest_gap`` (UAR and accuracy: the best and worst value).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    labels = list(labels)
    if proba.shape != (len(y_true), len(labels)):
        raise ValueError(f"proba has shape {proba.shape}, expected ({len(y_true)}, {len(labels)})")
    result = _core_metrics(y_true, proba, labels)
    result["labels"] = labels
    result["groups"] = {}
    for name, values in (groups or {}).items():
        values = np.asarray([str(v) for v in values], dtype=object)
        per_value = {
            str(v): {key: m[key] for key in ("n", "accuracy", "uar", "macro", "ece", "per_class")}
            for v in sorted(set(values))
            for m in [_core_metrics(y_true[values == v], proba[values == v], labels)]
        }
        gaps = {}
        for metric in ("uar", "accuracy"):
            ranked = sorted(per_value, key=lambda v: per_value[v][metric])
            gaps[metric] = {
                "gap": per_value[ranked[-1]][metric] - per_value[ranked[0]][metric],
                "best": ranked[-1],
                "worst": ranked[0],
            }
        result["groups"][name] = {"values": per_value, "largest_gap": gaps}
    return result


def _plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{matrix[i, j]}", ha="center", va="center", fontsize=9,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_reliability(y_true: np.ndarray, proba: np.ndarray, path: Path, ece: float, n_bins: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, n_bins + 1)
    centers, accuracy, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (confidence >= lo) & ((confidence < hi) | (hi == 1.0))
        if mask.any():
            centers.append(confidence[mask].mean())
            accuracy.append(correct[mask].mean())
            counts.append(int(mask.sum()))
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot(centers, accuracy, "o-", label=f"model (ECE {ece:.3f})")
    for x, y, c in zip(centers, accuracy, counts):
        ax.annotate(str(c), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Reliability (numbers: utterances per bin)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def write_evaluation_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    y_true: Sequence[int],
    proba: np.ndarray,
    title: str = "Evaluation",
    details: Mapping[str, Any] | None = None,
    extra_markdown: str | None = None,
) -> Path:
    """Write metrics.json, report.md, confusion_matrix.csv/.png, reliability.png; returns report.md.

    ``extra_markdown`` (e.g. the per-condition table) goes into report.md before the figures."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(metrics["labels"])
    matrix = np.asarray(metrics["confusion_matrix"], dtype=int)
    (out / "metrics.json").write_text(json.dumps({**metrics, "details": dict(details or {})}, indent=2, default=str))
    header = "true\\predicted," + ",".join(labels)
    np.savetxt(out / "confusion_matrix.csv", matrix, fmt="%d", delimiter=",", header=header, comments="")
    # the CSV's first column: true label names
    lines = (out / "confusion_matrix.csv").read_text().splitlines()
    (out / "confusion_matrix.csv").write_text("\n".join([lines[0]] + [f"{l},{row}" for l, row in zip(labels, lines[1:])]) + "\n")
    _plot_confusion(matrix, labels, out / "confusion_matrix.png", f"{title}: UAR {_pct(metrics['uar'])}, n={metrics['n']}")
    _plot_reliability(np.asarray(y_true), np.asarray(proba), out / "reliability.png", metrics["ece"])

    md = [f"# {title}", ""]
    for key, value in (details or {}).items():
        md.append(f"- **{key}**: {value}")
    md += [
        "",
        f"| n | accuracy | UAR | macro F1 | weighted F1 | ECE |",
        "|---|---|---|---|---|---|",
        f"| {metrics['n']} | {_pct(metrics['accuracy'])} | {_pct(metrics['uar'])} | {_pct(metrics['macro']['f1'])} "
        f"| {_pct(metrics['weighted']['f1'])} | {metrics['ece']:.3f} |",
        "",
        "## Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label, m in metrics["per_class"].items():
        md.append(f"| {label} | {_pct(m['precision'])} | {_pct(m['recall'])} | {_pct(m['f1'])} | {m['support']} |")
    for name, group in metrics.get("groups", {}).items():
        md += ["", f"## By {name}", "", "| value | n | accuracy | UAR | ECE |", "|---|---|---|---|---|"]
        for value, m in group["values"].items():
            md.append(f"| {value} | {m['n']} | {_pct(m['accuracy'])} | {_pct(m['uar'])} | {m['ece']:.3f} |")
        gap = group["largest_gap"]["uar"]
        md.append("")
        md.append(f"Largest UAR gap by {name}: {_pct(gap['gap'])} ({gap['best']} best, {gap['worst']} worst).")
    if extra_markdown:
        md += ["", extra_markdown.rstrip()]
    md += ["", "![confusion matrix](confusion_matrix.png)", "", "![reliability](reliability.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(md))
    return path
