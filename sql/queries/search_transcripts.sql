-- Which quotes say a given word or phrase?
-- mode=ilike (the default): case-insensitive, the text contains pattern, in which % stands for any run of characters
-- and _ for any one (DuckDB's ILIKE); mode=regex: pattern is a regular expression (RE2 syntax), matched case-insensitively.
-- Only transcripts with words (empty ones are left out); oldest session first. survey: empty searches every survey.
-- params: pattern, survey=, mode=ilike, limit=50
WITH chosen AS (
    SELECT CASE WHEN $mode IN ('ilike', 'regex') THEN $mode
                ELSE error('mode must be ilike or regex, not ' || $mode) END AS mode
)
SELECT survey_id, session_id, utterance_index, recorded_at, week, question, participant_key, segment, start_s, end_s,
       label, round(confidence, 4) AS confidence, round(negative_probability, 4) AS negative_probability,
       context_label, text, language, n_redacted
FROM v_quotes, chosen
WHERE ($survey = '' OR survey_id = $survey)
  AND NOT is_empty
  AND CASE chosen.mode WHEN 'regex' THEN regexp_matches(text, $pattern, 'i')
                       ELSE text ILIKE '%' || $pattern || '%' END
ORDER BY recorded_at, session_id, utterance_index
LIMIT CAST($limit AS INTEGER);
