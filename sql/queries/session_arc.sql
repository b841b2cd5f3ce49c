-- How did the mood of one session develop, utterance by utterance?
-- The running negative share with its count (n_negative_so_far of n_utterances_so_far), 95% interval and expected share (running mean P(negative)).
-- params: session
SELECT utterance_index, start_s, end_s, participant_key, question, label, round(confidence, 4) AS confidence,
       round(negative_probability, 4) AS negative_probability, n_utterances_so_far, n_negative_so_far,
       round(running_negative_share, 4) AS running_negative_share,
       round(running_negative_share_low, 4) AS running_negative_share_low,
       round(running_negative_share_high, 4) AS running_negative_share_high,
       round(expected_running_negative_share, 4) AS expected_running_negative_share
FROM v_session_arc
WHERE session_id = $session
ORDER BY utterance_index;
