-- What were a survey's most emotional moments (the clearest non-neutral utterances), for a clip reel?
-- params: survey, limit=10
SELECT rank, session_id, utterance_index, question, label, round(confidence, 4) AS confidence,
       spoken_at, source_uri, start_s, end_s
FROM v_emotional_moments
WHERE survey_id = $survey AND rank <= CAST($limit AS INTEGER)
ORDER BY rank;
