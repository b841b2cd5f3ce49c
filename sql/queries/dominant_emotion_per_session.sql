-- What was each session's dominant emotion, and how negative was it overall?
-- params: survey
WITH counts AS (
    SELECT session_id, recorded_at, market, label, count(*) AS n,
           sum(count(*)) OVER (PARTITION BY session_id) AS session_utterances,
           sum(count(*) FILTER (WHERE is_negative)) OVER (PARTITION BY session_id) AS session_negative,
           row_number() OVER (PARTITION BY session_id ORDER BY count(*) DESC, label) AS rank
    FROM v_labelled
    WHERE survey_id = $survey
    GROUP BY session_id, recorded_at, market, label
)
SELECT session_id, recorded_at, market, label AS dominant_emotion, round(n / session_utterances, 4) AS dominant_share,
       CAST(session_utterances AS BIGINT) AS n_utterances, round(session_negative / session_utterances, 4) AS negative_share
FROM counts
WHERE rank = 1
ORDER BY recorded_at, session_id;
