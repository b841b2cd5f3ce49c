-- What was each session's dominant emotion, and how negative was it overall?
-- Each share with its count (of n_utterances), 95% interval and expected share (mean probability).
-- params: survey
WITH per_emotion AS (
    SELECT session_id, emotion, count(*) FILTER (WHERE is_label) AS n, avg(p) AS expected_share,
           row_number() OVER (PARTITION BY session_id ORDER BY count(*) FILTER (WHERE is_label) DESC, emotion) AS rank
    FROM v_labelled_probabilities
    WHERE survey_id = $survey
    GROUP BY session_id, emotion
), per_session AS (
    SELECT session_id, recorded_at, market, count(*) AS n_utterances, count(*) FILTER (WHERE is_negative) AS n_negative,
           avg(negative_probability) AS expected_negative_share
    FROM v_labelled
    WHERE survey_id = $survey
    GROUP BY session_id, recorded_at, market
)
SELECT s.session_id, s.recorded_at, s.market, d.emotion AS dominant_emotion, d.n AS n_dominant,
       round(d.n / s.n_utterances, 4) AS dominant_share,
       round(wilson_low(d.n, s.n_utterances), 4) AS dominant_share_low,
       round(wilson_high(d.n, s.n_utterances), 4) AS dominant_share_high,
       round(d.expected_share, 4) AS expected_dominant_share,
       s.n_utterances, s.n_negative,
       round(s.n_negative / s.n_utterances, 4) AS negative_share,
       round(wilson_low(s.n_negative, s.n_utterances), 4) AS negative_share_low,
       round(wilson_high(s.n_negative, s.n_utterances), 4) AS negative_share_high,
       round(s.expected_negative_share, 4) AS expected_negative_share
FROM per_session s
JOIN per_emotion d ON d.session_id = s.session_id AND d.rank = 1
ORDER BY s.recorded_at, s.session_id;
