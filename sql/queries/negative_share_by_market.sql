-- Which markets (where the session took place) sound most negative?
-- The negative share with its count (n_negative of n_utterances), 95% interval and expected share (mean P(negative)).
-- params: survey
SELECT market, count(DISTINCT session_id) AS n_sessions, count(*) AS n_utterances,
       count(*) FILTER (WHERE is_negative) AS n_negative,
       round(n_negative / n_utterances, 4) AS negative_share,
       round(wilson_low(n_negative, n_utterances), 4) AS negative_share_low,
       round(wilson_high(n_negative, n_utterances), 4) AS negative_share_high,
       round(avg(negative_probability), 4) AS expected_negative_share,
       round(avg(confidence), 4) AS mean_confidence
FROM v_labelled
WHERE survey_id = $survey
GROUP BY market
ORDER BY negative_share DESC, market;
