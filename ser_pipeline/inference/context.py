"""Session context: refine each utterance's emotion probabilities with the session's earlier ones.

Within a focus-group session emotions persist: a participant who is angry now was likely
angry a moment ago. We treat the session as a hidden Markov chain over emotions and run
the forward filter (causal: utterance t uses only utterances 1..t):

    alpha_1(s) ∝ p(s | x_1)
    alpha_t(s) ∝ [p(s | x_t) / prior(s)] * sum_r alpha_{t-1}(r) A[r, s]

The classifier's posterior divided by the class prior it was trained under is, up to a
constant, the likelihood p(x_t | s) (the "scaled likelihood" trick of hybrid HMM systems).
Class-weighted training makes that prior close to uniform, the default.

The transition matrix ``A`` is estimated from labelled sessions (``fit_transitions``: counts
with add-``alpha`` smoothing). Without labelled sessions, ``sticky_transitions(K, stay)``
is the documented alternative: probability ``stay`` of keeping the emotion, the rest spread
evenly. The filtered result is stored beside the utterance's own probabilities, never in
place of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def sticky_transitions(n_classes: int, stay: float) -> np.ndarray:
    """``(K, K)``: ``stay`` on the diagonal, ``(1 - stay) / (K - 1)`` elsewhere. ``stay`` is the
    caller's ``Settings.context_stay``, the one place its value is written."""
    if not 0.0 <= stay <= 1.0:
        raise ValueError("stay must be in [0, 1]")
    if n_classes == 1:
        return np.ones((1, 1))
    matrix = np.full((n_classes, n_classes), (1.0 - stay) / (n_classes - 1))
    np.fill_diagonal(matrix, stay)
    return matrix


def fit_transitions(sequences: Iterable[Sequence[int]], n_classes: int, alpha: float = 1.0) -> np.ndarray:
    """Row-stochastic ``(K, K)`` from consecutive label pairs of each sequence (add-alpha smoothed)."""
    counts = np.full((n_classes, n_classes), float(alpha))
    for seq in sequences:
        seq = np.asarray(seq, dtype=np.int64)
        if len(seq) > 1:
            np.add.at(counts, (seq[:-1], seq[1:]), 1.0)
    return counts / counts.sum(axis=1, keepdims=True)


def forward_filter(
    proba: np.ndarray, transition: np.ndarray, prior: np.ndarray | None = None, floor: float = 1e-6
) -> np.ndarray:
    """Filtered probabilities ``(T, K)`` for one session's utterances in time order.

    ``proba``: the classifier's ``(T, K)`` posteriors; ``transition``: ``(K, K)``, rows sum
    to 1 (``A[r, s]`` = P(next = s | now = r)); ``prior``: the class prior of the classifier's
    training (uniform when None). ``floor`` keeps a single overconfident zero from
    vetoing a class for the rest of the session.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"proba must be (T, K), got {proba.shape}")
    t_len, k = proba.shape
    transition = np.asarray(transition, dtype=np.float64)
    if transition.shape != (k, k) or not np.allclose(transition.sum(axis=1), 1.0):
        raise ValueError(f"transition must be a row-stochastic ({k}, {k}) matrix")
    prior = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
    likelihood = np.maximum(proba, floor) / prior
    out = np.empty_like(proba)
    belief = None
    for t in range(t_len):
        predicted = prior if belief is None else belief @ transition
        belief = predicted * likelihood[t]
        belief /= belief.sum()
        out[t] = belief
    return out.astype(np.float32)


def filter_sessions(
    proba: np.ndarray, session_ids: Sequence[str], transition: np.ndarray, prior: np.ndarray | None = None
) -> np.ndarray:
    """``forward_filter`` applied to each session's rows (rows must be in time order within a session)."""
    proba = np.asarray(proba)
    session_ids = np.asarray([str(s) for s in session_ids], dtype=object)
    out = np.empty(proba.shape, dtype=np.float32)
    for session in dict.fromkeys(session_ids):
        rows = np.flatnonzero(session_ids == session)
        out[rows] = forward_filter(proba[rows], transition, prior)
    return out


def assemble_sessions(
    emotions: Sequence[str], speakers: Sequence[str], mean_run: float = 4.0, session_length: int = 20, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Order single-utterance corpora into pseudo-sessions for evaluating context.

    Acted corpora have no sessions, so we build them: each speaker's utterances are dealt
    into runs sharing one emotion (run lengths geometric with mean ``mean_run``, emotion
    switching at every run end), and cut into sessions of ``session_length``. Returns
    ``(order, session_ids)``: row positions in session-then-time order, and the session of
    each. Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    emotions = np.asarray([str(e) for e in emotions], dtype=object)
    speakers = np.asarray([str(s) for s in speakers], dtype=object)
    order: list[int] = []
    session_ids: list[str] = []
    for speaker in sorted(set(speakers)):
        pools = {
            e: list(rng.permutation(np.flatnonzero((speakers == speaker) & (emotions == e))))
            for e in sorted(set(emotions[speakers == speaker]))
        }
        sequence: list[int] = []
        current = None
        while any(pools.values()):
            choices = [e for e, pool in pools.items() if pool and e != current] or [e for e, pool in pools.items() if pool]
            current = choices[rng.integers(len(choices))]
            run = int(rng.geometric(1.0 / mean_run))
            for _ in range(min(run, len(pools[current]))):
                sequence.append(int(pools[current].pop()))
        for start in range(0, len(sequence), session_length):
            chunk = sequence[start : start + session_length]
            order.extend(chunk)
            session_ids.extend([f"{speaker}#{start // session_length}"] * len(chunk))
    return np.asarray(order, dtype=np.int64), np.asarray(session_ids, dtype=object)
