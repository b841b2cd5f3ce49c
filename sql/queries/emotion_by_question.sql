-- Which questions or topics drew the most negative reactions, and what was each one's dominant emotion?
-- params: survey
WITH per_question AS (
    SELECT question, label, n_utterances, share,
           CAST(sum(n_utterances) OVER (PARTITION BY question) AS BIGINT) AS question_utterances,
           row_number() OVER (PARTITION BY question ORDER BY n_utterances DESC, label) AS rank
    FROM v_emotion_share_by_question
    WHERE survey_id = $survey
)
SELECT q.question,
       q.question_utterances AS n_utterances,
       max(CASE WHEN q.rank = 1 THEN q.label END) AS dominant_emotion,
       round(sum(q.share) FILTER (WHERE e.is_negative), 4) AS negative_share
FROM per_question q JOIN emotions e ON e.emotion = q.label
GROUP BY q.question, q.question_utterances
ORDER BY negative_share DESC NULLS LAST, q.question;
