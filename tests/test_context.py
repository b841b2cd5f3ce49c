import numpy as np
import pytest

from ser_pipeline.inference.context import filter_sessions, fit_transitions, forward_filter, sticky_transitions


def test_sticky_prior_fixes_an_isolated_flip():
    # five confident "angry" (2), one weakly "happy" (1), then angry again
    proba = np.tile([0.05, 0.1, 0.8, 0.05], (7, 1))
    proba[4] = [0.05, 0.5, 0.4, 0.05]
    filtered = forward_filter(proba, sticky_transitions(4, stay=0.9))
    assert proba[4].argmax() == 1 and filtered[4].argmax() == 2
    np.testing.assert_allclose(filtered.sum(axis=1), 1.0, atol=1e-6)


def test_a_real_change_of_emotion_still_comes_through():
    proba = np.array([[0.8, 0.2]] * 3 + [[0.1, 0.9]] * 4)
    filtered = forward_filter(proba, sticky_transitions(2, stay=0.8))
    assert filtered[-1].argmax() == 1


def test_uninformative_transitions_leave_probabilities_unchanged():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(5), size=6)
    np.testing.assert_allclose(forward_filter(proba, np.full((5, 5), 0.2)), proba, rtol=1e-5)


def test_forward_filter_matches_a_hand_computed_step():
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    proba = np.array([[0.6, 0.4], [0.3, 0.7]])
    predicted = np.array([0.6, 0.4]) @ a  # [0.62, 0.38]
    expected = predicted * proba[1] / (predicted * proba[1]).sum()
    np.testing.assert_allclose(forward_filter(proba, a)[1], expected, rtol=1e-6)


def test_fit_transitions_counts_consecutive_pairs():
    a = fit_transitions([[0, 0, 1], [1, 1]], n_classes=2, alpha=0.0)
    np.testing.assert_allclose(a, [[0.5, 0.5], [0.0, 1.0]])
    smoothed = fit_transitions([[0, 0]], n_classes=3, alpha=1.0)
    np.testing.assert_allclose(smoothed[0], [2 / 4, 1 / 4, 1 / 4])
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)


def test_sessions_are_filtered_independently():
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7]])
    out = filter_sessions(proba, ["s1", "s1", "s2"], sticky_transitions(2, 0.95))
    np.testing.assert_allclose(out[2], proba[2], rtol=1e-5)  # first of its own session: no carry-over


def test_bad_transition_matrix_is_refused():
    with pytest.raises(ValueError, match="row-stochastic"):
        forward_filter(np.ones((2, 3)) / 3, np.ones((3, 3)))


def test_assembled_sessions_hold_runs_of_one_speaker_and_every_utterance_once():
    from ser_pipeline.inference.context import assemble_sessions

    emotions = ["happy", "sad", "angry"] * 20
    speakers = ["a"] * 30 + ["b"] * 30
    order, sessions = assemble_sessions(emotions, speakers, mean_run=4, session_length=10, seed=0)
    assert sorted(order.tolist()) == list(range(60))
    for session in set(sessions):
        rows = order[sessions == session]
        assert len({speakers[i] for i in rows}) == 1 and len(rows) <= 10
    seq = [emotions[i] for i in order]
    stays = np.mean([a == b for a, b in zip(seq, seq[1:])])
    assert stays > 0.5  # runs, not a shuffle (a shuffle of 3 emotions stays ~1/3 of the time)
    again = assemble_sessions(emotions, speakers, mean_run=4, session_length=10, seed=0)
    assert np.array_equal(again[0], order)
