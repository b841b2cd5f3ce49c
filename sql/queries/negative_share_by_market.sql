-- Which markets (where the session took place) sound most negative?
-- params: survey
SELECT market, count(DISTINCT session_id) AS n_sessions, count(*) AS n_utterances,
       round(avg(CAST(is_negative AS DOUBLE)), 4) AS negative_share,
       round(avg(confidence), 4) AS mean_confidence
FROM v_labelled
WHERE survey_id = $survey
GROUP BY market
ORDER BY negative_share DESC, market;
