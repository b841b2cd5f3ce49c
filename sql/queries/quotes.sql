-- What did participants say: a survey's quotes with their emotion label, confidence, segment, question and time?
-- The clearest first (highest confidence of the label). Only transcripts with words: the empty ones (empty_reason set)
-- are left out and counted by transcript_coverage. Redactions show as [EMAIL], [PHONE], [URL], [CARD].
-- label: one emotion, several separated by commas (angry,sad), or negative (labels.NEGATIVE_EMOTIONS); empty: all.
-- question: one question, exactly as the manifest names it; empty: all (and answers to no question).
-- params: survey, label=, question=, limit=50
WITH chosen AS (
    SELECT CASE
        WHEN $label = '' OR list_has_all(['negative'] || (SELECT list(emotion) FROM emotions), string_split($label, ','))
            THEN string_split($label, ',')
        ELSE error('label must be an emotion (' || (SELECT string_agg(emotion, ', ' ORDER BY emotion) FROM emotions)
                   || '), several separated by commas, negative, or empty for all; not ' || $label)
    END AS labels
)
SELECT session_id, utterance_index, recorded_at, week, question, participant_key, segment, age_band, gender,
       start_s, end_s, label, round(confidence, 4) AS confidence, round(negative_probability, 4) AS negative_probability,
       context_label, text, language, n_redacted
FROM v_quotes q, chosen
WHERE survey_id = $survey
  AND NOT is_empty
  AND ($label = '' OR list_contains(chosen.labels, label) OR (list_contains(chosen.labels, 'negative') AND is_negative))
  AND ($question = '' OR question = $question)
ORDER BY q.confidence DESC, q.spoken_at, q.utterance_id
LIMIT CAST($limit AS INTEGER);
