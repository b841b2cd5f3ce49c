-- Which predictions should a person listen to first (least confident first)?
-- params: survey, max_confidence=0.5, limit=50
SELECT session_id, utterance_index, source_uri, start_s, end_s, label, round(confidence, 4) AS confidence, context_label
FROM v_labelled
WHERE survey_id = $survey AND confidence < CAST($max_confidence AS DOUBLE)
ORDER BY confidence, utterance_id
LIMIT CAST($limit AS INTEGER);
