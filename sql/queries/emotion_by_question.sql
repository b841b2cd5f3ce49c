-- Which questions or topics drew the most negative reactions, and what was each one's dominant emotion?
-- The negative share with its count (n_negative of n_utterances), 95% interval and expected share (mean P(negative)).
-- params: survey
WITH per_question AS (
    SELECT question, count(*) AS n_utterances, count(*) FILTER (WHERE is_negative) AS n_negative,
           avg(negative_probability) AS expected_negative_share
    FROM v_labelled
    WHERE survey_id = $survey AND question IS NOT NULL
    GROUP BY question
), dominant AS (
    SELECT question, label AS dominant_emotion
    FROM v_emotion_share_by_question
    WHERE survey_id = $survey
    QUALIFY row_number() OVER (PARTITION BY question ORDER BY n_utterances DESC, label) = 1
)
SELECT question, n_utterances, dominant_emotion, n_negative,
       round(n_negative / n_utterances, 4) AS negative_share,
       round(wilson_low(n_negative, n_utterances), 4) AS negative_share_low,
       round(wilson_high(n_negative, n_utterances), 4) AS negative_share_high,
       round(expected_negative_share, 4) AS expected_negative_share
FROM per_question JOIN dominant USING (question)
ORDER BY negative_share DESC, question;
