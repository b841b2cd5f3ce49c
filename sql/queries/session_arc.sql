-- How did the mood of one session develop, utterance by utterance?
-- params: session
SELECT utterance_index, start_s, end_s, participant_key, question, label, round(confidence, 4) AS confidence,
       round(negative_probability, 4) AS negative_probability, round(running_negative_share, 4) AS running_negative_share
FROM v_session_arc
WHERE session_id = $session
ORDER BY utterance_index;
