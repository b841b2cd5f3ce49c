-- Views for analysts' trend questions. `warehouse.migrate` (re)creates them after the
-- migrations, so editing this file and running `ser warehouse migrate` updates them in place.
--
-- Which model's labels the views show: v_current_model picks, in order,
--   1. the session variable ser_model_version (`SET VARIABLE ser_model_version = 'v2'`;
--      `run_query(..., model_version=...)` and `ser query --model` set it),
--   2. the version pinned in current_model (`warehouse.pin_model`),
--   3. the most recently promoted version (model_versions.promoted_at),
--   4. the most recently created version.
-- The review queue's threshold is the session variable ser_review_threshold (default 0.5).
--
-- Every share comes with the counts behind it, its 95% Wilson score interval (share_low,
-- share_high: a share of 3 in 14 is 0.21 but could well be anything from 0.08 to 0.48) and,
-- beside the hard-label share, the expected share: the mean of the model's probability over
-- the same utterances, which is less biased than counting labels when the model is unsure.

-- The Wilson score interval of a share of k in n, at the normal quantile z (default 1.96...,
-- the 97.5% quantile: a 95% interval); the low bound of a share of 0 is exactly 0, the high bound of 1 exactly 1.
-- Analysts can call these too: SELECT wilson_low(3, 14), wilson_high(3, 14).
CREATE OR REPLACE MACRO wilson_bound(k, n, side, z) AS
    (k / n + z ^ 2 / (2 * n) + side * z * sqrt((k / n) * (1 - k / n) / n + z ^ 2 / (4 * n ^ 2))) / (1 + z ^ 2 / n);
CREATE OR REPLACE MACRO wilson_low(k, n, z := 1.959963984540054) AS
    CASE WHEN k = 0 THEN 0.0 ELSE wilson_bound(k, n, -1, z) END;
CREATE OR REPLACE MACRO wilson_high(k, n, z := 1.959963984540054) AS
    CASE WHEN k = n THEN 1.0 ELSE wilson_bound(k, n, 1, z) END;

CREATE OR REPLACE VIEW v_current_model AS
SELECT model_version, chosen_by
FROM (
    SELECT getvariable('ser_model_version') AS model_version, 'session variable' AS chosen_by, 0 AS priority
    UNION ALL
    SELECT model_version, 'pinned', 1 FROM current_model
    UNION ALL
    SELECT * FROM (SELECT model_version, 'promoted', 2 FROM model_versions
                   WHERE promoted_at IS NOT NULL ORDER BY promoted_at DESC, model_version DESC LIMIT 1)
    UNION ALL
    SELECT * FROM (SELECT model_version, 'latest', 3 FROM model_versions
                   ORDER BY created_at DESC, model_version DESC LIMIT 1)
)
WHERE model_version IS NOT NULL
ORDER BY priority
LIMIT 1;

-- Every utterance with its session, survey and (pseudonymous) speaker's segment attributes.
-- utterance_index: 1-based order within the session; spoken_at: recorded_at + start_s;
-- week: the Monday of the session's week (in the connection's TimeZone, UTC by default).
CREATE OR REPLACE VIEW v_utterances AS
SELECT
    s.survey_id,
    u.session_id,
    u.utterance_id,
    row_number() OVER (PARTITION BY u.session_id ORDER BY u.start_s, u.utterance_id) AS utterance_index,
    u.participant_key,
    p.age_band,
    p.gender,
    p.market AS participant_market,
    p.segment,
    s.market,
    s.location,
    s.moderator,
    u.question,
    s.recorded_at,
    CAST(date_trunc('week', s.recorded_at) AS DATE) AS week,
    s.recorded_at + to_microseconds(CAST(round(u.start_s * 1e6) AS BIGINT)) AS spoken_at,
    u.start_s,
    u.end_s,
    u.duration_s,
    u.source_uri
FROM utterances u
JOIN sessions s USING (session_id)
LEFT JOIN participants p ON p.survey_id = s.survey_id AND p.participant_key = u.participant_key;

-- Utterances labelled by the current model (one row per utterance that model predicted).
CREATE OR REPLACE VIEW v_labelled AS
SELECT
    u.*,
    pr.model_version,
    pr.label,
    pr.confidence,
    e.is_negative,
    CASE WHEN coalesce(pr.p_neutral, pr.p_calm, pr.p_happy, pr.p_sad, pr.p_angry, pr.p_fearful, pr.p_disgust, pr.p_surprised) IS NOT NULL
         THEN coalesce(pr.p_sad, 0) + coalesce(pr.p_angry, 0) + coalesce(pr.p_fearful, 0) + coalesce(pr.p_disgust, 0)
    END AS negative_probability,  -- P(negative); NULL for a model that stored no probabilities
    pr.context_label,
    pr.context_confidence,
    pr.p_neutral, pr.p_calm, pr.p_happy, pr.p_sad, pr.p_angry, pr.p_fearful, pr.p_disgust, pr.p_surprised
FROM v_utterances u
JOIN predictions pr ON pr.utterance_id = u.utterance_id
JOIN emotions e ON e.emotion = pr.label
WHERE pr.model_version = (SELECT model_version FROM v_current_model);

-- The labelled utterances once per emotion: p is the current model's probability of that
-- emotion (NULL where the model does not predict it), is_label whether it is the utterance's
-- label. The share views count is_label (the hard share) and average p (the expected share)
-- over the same rows, so both describe exactly the same utterances.
CREATE OR REPLACE VIEW v_labelled_probabilities AS
SELECT *, emotion = label AS is_label
FROM v_labelled
UNPIVOT INCLUDE NULLS (p FOR emotion IN (
    p_neutral AS 'neutral', p_calm AS 'calm', p_happy AS 'happy', p_sad AS 'sad',
    p_angry AS 'angry', p_fearful AS 'fearful', p_disgust AS 'disgust', p_surprised AS 'surprised'
));

-- Share of each emotion among a survey's utterances, per week: n_utterances of the
-- week_utterances carried the label. One row per label that occurs.
CREATE OR REPLACE VIEW v_emotion_share_weekly AS
SELECT
    survey_id, week, emotion AS label,
    count(*) FILTER (WHERE is_label) AS n_utterances,
    count(*) AS week_utterances,
    n_utterances / week_utterances AS share,
    wilson_low(n_utterances, week_utterances) AS share_low,
    wilson_high(n_utterances, week_utterances) AS share_high,
    avg(p) AS expected_share
FROM v_labelled_probabilities
GROUP BY survey_id, week, emotion
HAVING count(*) FILTER (WHERE is_label) > 0;

-- Share of each emotion per question or topic (utterances without a question are left out),
-- of question_utterances; the same columns as v_emotion_share_weekly.
CREATE OR REPLACE VIEW v_emotion_share_by_question AS
SELECT
    survey_id, question, emotion AS label,
    count(*) FILTER (WHERE is_label) AS n_utterances,
    count(*) AS question_utterances,
    n_utterances / question_utterances AS share,
    wilson_low(n_utterances, question_utterances) AS share_low,
    wilson_high(n_utterances, question_utterances) AS share_high,
    avg(p) AS expected_share
FROM v_labelled_probabilities
WHERE question IS NOT NULL
GROUP BY survey_id, question, emotion
HAVING count(*) FILTER (WHERE is_label) > 0;

-- Share of each emotion per participant segment attribute (age_band, gender, market, segment),
-- of group_utterances (the utterances of participants with that value); the same columns.
CREATE OR REPLACE VIEW v_emotion_share_by_segment AS
WITH long AS (
    UNPIVOT (SELECT survey_id, emotion, is_label, p, age_band, gender, participant_market AS market, segment
             FROM v_labelled_probabilities)
    ON age_band, gender, market, segment
    INTO NAME attribute VALUE value
)
SELECT
    survey_id, attribute, value, emotion AS label,
    count(*) FILTER (WHERE is_label) AS n_utterances,
    count(*) AS group_utterances,
    n_utterances / group_utterances AS share,
    wilson_low(n_utterances, group_utterances) AS share_low,
    wilson_high(n_utterances, group_utterances) AS share_high,
    avg(p) AS expected_share
FROM long
GROUP BY survey_id, attribute, value, emotion
HAVING count(*) FILTER (WHERE is_label) > 0;

-- A session's emotional arc: each utterance in order, with the running share of negative
-- labels so far (n_negative_so_far of n_utterances_so_far), its interval, and the running
-- mean of P(negative) beside it.
CREATE OR REPLACE VIEW v_session_arc AS
WITH running AS (
    SELECT
        survey_id, session_id, utterance_index, utterance_id, participant_key, question,
        start_s, end_s, spoken_at, label, confidence, negative_probability, context_label,
        count(*) OVER so_far AS n_utterances_so_far,
        count(*) FILTER (WHERE is_negative) OVER so_far AS n_negative_so_far,
        avg(negative_probability) OVER so_far AS expected_running_negative_share
    FROM v_labelled
    WINDOW so_far AS (PARTITION BY session_id ORDER BY utterance_index ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT
    * EXCLUDE (expected_running_negative_share),
    n_negative_so_far / n_utterances_so_far AS running_negative_share,
    wilson_low(n_negative_so_far, n_utterances_so_far) AS running_negative_share_low,
    wilson_high(n_negative_so_far, n_utterances_so_far) AS running_negative_share_high,
    expected_running_negative_share
FROM running;

-- Share of negative emotions (labels.NEGATIVE_EMOTIONS) per survey and week: the count behind
-- it, its 95% Wilson interval, the expected share from the probabilities (mean of p(negative),
-- less biased than hard labels when the model is unsure), and the change from the previous
-- week *that has utterances*, with how many weeks lie between them (sessions are rarely weekly).
CREATE OR REPLACE VIEW v_negative_trend AS
WITH weekly AS (
    SELECT survey_id, week,
           count(*) AS n_utterances,
           count(*) FILTER (WHERE is_negative) AS n_negative,
           count(*) FILTER (WHERE is_negative) / count(*) AS negative_share,
           avg(negative_probability) AS expected_negative_share
    FROM v_labelled
    GROUP BY survey_id, week
), with_previous AS (
    SELECT *,
           lag(week) OVER (PARTITION BY survey_id ORDER BY week) AS previous_week,
           lag(negative_share) OVER (PARTITION BY survey_id ORDER BY week) AS previous_share
    FROM weekly
)
SELECT
    survey_id, week, n_utterances, n_negative, negative_share,
    wilson_low(n_negative, n_utterances) AS negative_share_low,
    wilson_high(n_negative, n_utterances) AS negative_share_high,
    expected_negative_share,
    previous_week,
    CAST(datediff('day', previous_week, week) // 7 AS INTEGER) AS weeks_since_previous,
    previous_share,
    negative_share - previous_share AS change_from_previous
FROM with_previous;

-- The most emotional moments: utterances labelled with an emotion other than neutral or calm,
-- ranked within their survey by the model's confidence.
CREATE OR REPLACE VIEW v_emotional_moments AS
SELECT
    survey_id, session_id, utterance_id, utterance_index, participant_key, question,
    spoken_at, start_s, end_s, source_uri, label, confidence,
    row_number() OVER (PARTITION BY survey_id ORDER BY confidence DESC, utterance_id) AS rank
FROM v_labelled
WHERE label NOT IN ('neutral', 'calm');

-- Predictions a person should check: low confidence, or the session-context label disagrees.
CREATE OR REPLACE VIEW v_review_queue AS
SELECT
    survey_id, session_id, utterance_id, utterance_index, question, source_uri, start_s, end_s,
    label, confidence, context_label, context_confidence,
    CASE WHEN confidence < coalesce(getvariable('ser_review_threshold'), 0.5) THEN 'low confidence'
         ELSE 'context disagrees' END AS reason
FROM v_labelled
WHERE confidence < coalesce(getvariable('ser_review_threshold'), 0.5)
   OR (context_label IS NOT NULL AND context_label <> label)
ORDER BY confidence, utterance_id;

-- How labels moved when the model changed: the current model's label beside every other
-- version's label for the same utterance.
CREATE OR REPLACE VIEW v_model_comparison AS
SELECT
    u.survey_id, u.session_id, u.utterance_id,
    cur.model_version AS current_version,
    other.model_version AS other_version,
    other.label AS other_label,
    cur.label AS current_label,
    other.label <> cur.label AS label_changed,
    cur.confidence - other.confidence AS confidence_change
FROM predictions cur
JOIN predictions other ON other.utterance_id = cur.utterance_id AND other.model_version <> cur.model_version
JOIN v_utterances u ON u.utterance_id = cur.utterance_id
WHERE cur.model_version = (SELECT model_version FROM v_current_model);

-- The same, counted: how many utterances went from each old label to each current label.
CREATE OR REPLACE VIEW v_model_label_transitions AS
SELECT survey_id, other_version, current_version, other_label, current_label, count(*) AS n_utterances
FROM v_model_comparison
GROUP BY ALL;

-- ---------------------------------------------------------------------------------------
-- What was said (the transcripts table, migration 004; empty when SER_TRANSCRIBE=false).

-- One transcript per utterance. Where several transcription models wrote one (a model
-- upgrade, a re-run with a larger model), the latest transcribed_at wins (a tie: the model
-- name last in sort order); n_transcripts says how many there are, the others stay in the
-- transcripts table. is_empty: nothing usable was heard, text is '' and empty_reason says
-- why (no speech, a repeated phrase, ...). text is redacted: [EMAIL], [PHONE], [URL] and
-- [CARD] stand where something was removed, n_redacted counts them.
CREATE OR REPLACE VIEW v_transcripts AS
SELECT
    utterance_id,
    model AS transcript_model,
    text,
    empty_reason IS NOT NULL AS is_empty,
    empty_reason,
    n_redacted,
    language,
    language_source,
    language_probability,
    avg_logprob,
    no_speech_prob,
    ingest_run_id,
    transcribed_at,
    count(*) OVER (PARTITION BY utterance_id) AS n_transcripts
FROM transcripts
QUALIFY row_number() OVER (PARTITION BY utterance_id ORDER BY transcribed_at DESC, model DESC) = 1;

-- Quotes: what each labelled utterance said, beside the current model's label (v_labelled),
-- who said it (pseudonym and segment attributes), when (recorded_at, week, spoken_at,
-- start_s/end_s into the recording) and to which question. One row per utterance that has
-- both a label from the current model and a transcript; the empty ones are here too, with
-- is_empty and empty_reason, so filter `NOT is_empty` for text to quote.
CREATE OR REPLACE VIEW v_quotes AS
SELECT
    l.survey_id, l.session_id, l.utterance_id, l.utterance_index, l.participant_key,
    l.age_band, l.gender, l.participant_market, l.segment, l.market, l.location,
    l.question, l.recorded_at, l.week, l.spoken_at, l.start_s, l.end_s, l.duration_s, l.source_uri,
    l.model_version, l.label, l.confidence, l.is_negative, l.negative_probability,
    l.context_label, l.context_confidence,
    t.text, t.is_empty, t.empty_reason, t.n_redacted, t.language, t.language_source,
    t.avg_logprob, t.no_speech_prob, t.transcript_model, t.transcribed_at, t.n_transcripts
FROM v_labelled l
JOIN v_transcripts t USING (utterance_id);

-- English function words that say nothing about how something was felt; negations (no, not,
-- never, nothing, ...) are deliberately not among them. SELECT is_stop_word('the').
CREATE OR REPLACE MACRO is_stop_word(word) AS list_contains([
    'a', 'about', 'after', 'again', 'all', 'also', 'am', 'an', 'and', 'any', 'are', 'as', 'at',
    'be', 'because', 'been', 'before', 'being', 'both', 'but', 'by', 'can', 'could', 'did', 'do',
    'does', 'doing', 'for', 'from', 'had', 'has', 'have', 'having', 'he', 'her', 'here', 'hers',
    'him', 'his', 'how', 'i', 'i''d', 'i''ll', 'i''m', 'i''ve', 'if', 'in', 'into', 'is', 'it',
    'it''s', 'its', 'just', 'like', 'me', 'mean', 'might', 'more', 'most', 'much', 'my', 'of', 'oh',
    'on', 'one', 'only', 'or', 'other', 'our', 'out', 'over', 'really', 'said', 'say', 'she', 'so',
    'some', 'than', 'that', 'that''s', 'the', 'their', 'them', 'then', 'there', 'these', 'they',
    'this', 'those', 'to', 'uh', 'um', 'up', 'us', 'very', 'was', 'we', 'well', 'were', 'what',
    'when', 'where', 'which', 'while', 'who', 'why', 'will', 'with', 'would', 'yeah', 'you',
    'you''re', 'your'
], word);

-- The words of a text, as the word counts (negative_words) see them: redaction placeholders
-- and Whisper's bracketed tags ([EMAIL], [MUSIC]) removed, lower-cased, split on anything
-- but letters (any script), digits and apostrophes; kept: tokens of at least 2 characters
-- with a letter in them that are no stop-word (is_stop_word).
-- SELECT words('Mail me at [EMAIL], it''s far too expensive!') gives [mail, far, too, expensive].
CREATE OR REPLACE MACRO words(text) AS list_filter(
    list_transform(
        string_split_regex(lower(regexp_replace(replace(text, '’', ''''), '\[[A-Z_]+\]', ' ', 'g')), '[^\p{L}\p{N}'']+'),
        lambda w: trim(w, '''')),
    lambda w: length(w) >= 2 AND regexp_matches(w, '\p{L}') AND NOT is_stop_word(w));

-- One row per word of every non-empty quote (words(text)), with the quote's survey,
-- question, label and whether it is negative: the input of the word counts.
CREATE OR REPLACE VIEW v_quote_words AS
SELECT survey_id, session_id, utterance_id, question, label, is_negative, unnest(words(text)) AS word
FROM v_quotes
WHERE NOT is_empty;
