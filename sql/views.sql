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
    coalesce(pr.p_sad, 0) + coalesce(pr.p_angry, 0) + coalesce(pr.p_fearful, 0) + coalesce(pr.p_disgust, 0)
        AS negative_probability,
    pr.context_label,
    pr.context_confidence,
    pr.p_neutral, pr.p_calm, pr.p_happy, pr.p_sad, pr.p_angry, pr.p_fearful, pr.p_disgust, pr.p_surprised
FROM v_utterances u
JOIN predictions pr ON pr.utterance_id = u.utterance_id
JOIN emotions e ON e.emotion = pr.label
WHERE pr.model_version = (SELECT model_version FROM v_current_model);

-- Share of each emotion among a survey's utterances, per week.
CREATE OR REPLACE VIEW v_emotion_share_weekly AS
SELECT
    survey_id, week, label,
    count(*) AS n_utterances,
    CAST(sum(count(*)) OVER (PARTITION BY survey_id, week) AS BIGINT) AS week_utterances,
    count(*) / sum(count(*)) OVER (PARTITION BY survey_id, week) AS share
FROM v_labelled
GROUP BY survey_id, week, label;

-- Share of each emotion per question or topic (utterances without a question are left out).
CREATE OR REPLACE VIEW v_emotion_share_by_question AS
SELECT
    survey_id, question, label,
    count(*) AS n_utterances,
    CAST(sum(count(*)) OVER (PARTITION BY survey_id, question) AS BIGINT) AS question_utterances,
    count(*) / sum(count(*)) OVER (PARTITION BY survey_id, question) AS share
FROM v_labelled
WHERE question IS NOT NULL
GROUP BY survey_id, question, label;

-- Share of each emotion per participant segment attribute (age_band, gender, market, segment).
CREATE OR REPLACE VIEW v_emotion_share_by_segment AS
WITH long AS (
    UNPIVOT (SELECT survey_id, label, age_band, gender, participant_market AS market, segment FROM v_labelled)
    ON age_band, gender, market, segment
    INTO NAME attribute VALUE value
)
SELECT
    survey_id, attribute, value, label,
    count(*) AS n_utterances,
    CAST(sum(count(*)) OVER (PARTITION BY survey_id, attribute, value) AS BIGINT) AS group_utterances,
    count(*) / sum(count(*)) OVER (PARTITION BY survey_id, attribute, value) AS share
FROM long
GROUP BY survey_id, attribute, value, label;

-- A session's emotional arc: each utterance in order, with the running share of negative labels.
CREATE OR REPLACE VIEW v_session_arc AS
SELECT
    survey_id, session_id, utterance_index, utterance_id, participant_key, question,
    start_s, end_s, spoken_at, label, confidence, negative_probability, context_label,
    avg(CAST(is_negative AS INTEGER)) OVER (
        PARTITION BY session_id ORDER BY utterance_index ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS running_negative_share
FROM v_labelled;

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
), wilson AS (
    SELECT *,
           (negative_share + z ^ 2 / (2 * n_utterances)) / (1 + z ^ 2 / n_utterances) AS centre,
           z * sqrt(negative_share * (1 - negative_share) / n_utterances + z ^ 2 / (4 * n_utterances ^ 2))
               / (1 + z ^ 2 / n_utterances) AS half_width
    FROM with_previous, (SELECT 1.959963984540054 AS z)  -- the normal quantile of 97.5%
)
SELECT
    survey_id, week, n_utterances, n_negative, negative_share,
    centre - half_width AS negative_share_low,
    centre + half_width AS negative_share_high,
    expected_negative_share,
    previous_week,
    CAST(datediff('day', previous_week, week) // 7 AS INTEGER) AS weeks_since_previous,
    previous_share,
    negative_share - previous_share AS change_from_previous
FROM wilson;

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
