-- How much of a survey was transcribed, session by session: utterances with words, empty transcripts (and why), none at all?
-- n_transcribed have text to quote; n_empty were transcribed but nothing usable was heard (empty_reasons: why, with counts);
-- n_not_transcribed have no transcript (SER_TRANSCRIBE=false, or not yet); n_redacted: redactions in the texts.
-- The last row (session_id NULL) is the whole survey. Counts every utterance, labelled or not.
-- params: survey
WITH per_utterance AS (
    SELECT u.session_id, u.recorded_at, u.utterance_id, t.utterance_id IS NOT NULL AS has_transcript,
           t.is_empty, t.empty_reason, t.n_redacted, t.language, t.transcript_model
    FROM v_utterances u
    LEFT JOIN v_transcripts t USING (utterance_id)
    WHERE u.survey_id = $survey
), reasons AS (
    SELECT session_id, empty_reason, count(*) AS n
    FROM per_utterance
    WHERE is_empty
    GROUP BY GROUPING SETS ((session_id, empty_reason), (empty_reason))
)
SELECT session_id, min(recorded_at) AS recorded_at,
       count(*) AS n_utterances,
       count(*) FILTER (WHERE has_transcript AND NOT is_empty) AS n_transcribed,
       count(*) FILTER (WHERE is_empty) AS n_empty,
       (SELECT string_agg(r.empty_reason || ': ' || r.n, '; ' ORDER BY r.n DESC, r.empty_reason) FROM reasons r
        WHERE r.session_id IS NOT DISTINCT FROM p.session_id) AS empty_reasons,
       count(*) FILTER (WHERE NOT has_transcript) AS n_not_transcribed,
       CAST(coalesce(sum(n_redacted), 0) AS BIGINT) AS n_redacted,
       string_agg(DISTINCT language, ', ' ORDER BY language) AS languages,
       string_agg(DISTINCT transcript_model, ', ' ORDER BY transcript_model) AS transcript_models
FROM per_utterance p
GROUP BY GROUPING SETS ((session_id), ())
ORDER BY session_id IS NULL, recorded_at, session_id;
