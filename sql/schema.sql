-- The whole warehouse schema, readable in one place. It is what sql/migrations/*.sql add up
-- to (tests check the two agree); migrations are what `warehouse.migrate` applies, so an
-- existing warehouse upgrades in place. Views live in sql/views.sql.
--
-- Keys: every table has a primary key so that loading a batch twice inserts nothing twice.
-- Predictions are keyed by (utterance_id, model_version): a new model adds rows beside the
-- old ones. Participants appear only as participant_key = HMAC-SHA256(pseudonym_key, id).
-- There are no FOREIGN KEY constraints: DuckDB cannot update a row another table references
-- (upserts of sessions or a pseudonym-key rotation would fail); loaders check references.

CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        VARCHAR NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

CREATE TABLE surveys (
    survey_id       VARCHAR PRIMARY KEY,
    source_url      VARCHAR NOT NULL,           -- the survey folder in the archive
    n_sessions      INTEGER NOT NULL,
    n_participants  INTEGER NOT NULL,
    loaded_at       TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

CREATE TABLE sessions (
    session_id   VARCHAR PRIMARY KEY,
    survey_id    VARCHAR NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL,
    moderator    VARCHAR,
    market       VARCHAR,
    location     VARCHAR,
    audio_url    VARCHAR NOT NULL,
    turns_source VARCHAR,                        -- 'turns.csv', 'rttm' or NULL (segmented from audio)
    metadata     JSON,
    loaded_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

CREATE TABLE participants (
    survey_id        VARCHAR NOT NULL,
    participant_key  VARCHAR NOT NULL,           -- HMAC-SHA256(pseudonym_key, participant_id), hex
    age_band         VARCHAR,
    gender           VARCHAR,
    market           VARCHAR,
    segment          VARCHAR,
    PRIMARY KEY (survey_id, participant_key)
);

CREATE TABLE session_participants (
    session_id       VARCHAR NOT NULL,
    participant_key  VARCHAR NOT NULL,
    PRIMARY KEY (session_id, participant_key)
);

CREATE TABLE utterances (
    utterance_id     VARCHAR PRIMARY KEY,        -- sha256(recording_hash:start_ms:end_ms)[:32]
    session_id       VARCHAR NOT NULL,
    participant_key  VARCHAR,                    -- NULL when the speaker is unknown
    start_s          DOUBLE NOT NULL,
    end_s            DOUBLE NOT NULL,
    duration_s       DOUBLE NOT NULL,
    source_uri       VARCHAR NOT NULL,           -- the recording the utterance was cut from
    content_hash     VARCHAR NOT NULL,
    question         VARCHAR,                    -- question or topic, when the manifest gives one
    loaded_at        TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    CHECK (end_s > start_s AND start_s >= 0)
);

CREATE TABLE model_versions (
    model_version  VARCHAR PRIMARY KEY,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    labels         VARCHAR[],                    -- the classes the model predicts
    feature_spec   VARCHAR,                      -- FeatureSpec hash the model was trained on
    metrics        JSON,
    promoted_at    TIMESTAMPTZ                   -- set when promoted; latest promoted is current
);

CREATE TABLE emotions (
    emotion      VARCHAR PRIMARY KEY,            -- labels.EMOTIONS; filled by warehouse.migrate
    position     INTEGER NOT NULL,
    is_negative  BOOLEAN NOT NULL                -- labels.NEGATIVE_EMOTIONS
);

CREATE TABLE predictions (
    utterance_id        VARCHAR NOT NULL,
    model_version       VARCHAR NOT NULL,
    label               VARCHAR NOT NULL,
    confidence          DOUBLE NOT NULL,
    p_neutral           DOUBLE,
    p_calm              DOUBLE,
    p_happy             DOUBLE,
    p_sad               DOUBLE,
    p_angry             DOUBLE,
    p_fearful           DOUBLE,
    p_disgust           DOUBLE,
    p_surprised         DOUBLE,
    context_label       VARCHAR,
    context_confidence  DOUBLE,
    ctx_p_neutral       DOUBLE,
    ctx_p_calm          DOUBLE,
    ctx_p_happy         DOUBLE,
    ctx_p_sad           DOUBLE,
    ctx_p_angry         DOUBLE,
    ctx_p_fearful       DOUBLE,
    ctx_p_disgust       DOUBLE,
    ctx_p_surprised     DOUBLE,
    ingest_run_id       VARCHAR,
    predicted_at        TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (utterance_id, model_version),
    CHECK (confidence >= 0 AND confidence <= 1)
);

CREATE TABLE ingest_runs (
    run_id          VARCHAR PRIMARY KEY,
    flow_run_id     VARCHAR,
    flow_name       VARCHAR,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    status          VARCHAR NOT NULL,            -- running, completed, failed, partial, abandoned
    n_sessions      INTEGER,
    n_utterances    INTEGER,
    n_predictions   INTEGER,
    n_quarantined   INTEGER,
    message         VARCHAR,
    host            VARCHAR,                     -- the process running it: host and pid
    pid             INTEGER,
    heartbeat_at    TIMESTAMPTZ,                 -- last sign of life (start, each load)
    abandoned_at    TIMESTAMPTZ,                 -- when a later run found its process gone
    abandoned_by    VARCHAR,                     -- that run
    tmp_files_removed INTEGER                    -- temporary files of the dead process removed
);

CREATE TABLE quarantine (
    quarantine_id   VARCHAR PRIMARY KEY,         -- sha256(stage:source:content_hash)[:32]
    stage           VARCHAR NOT NULL,            -- manifest, audio, features, predictions, ...
    source          VARCHAR NOT NULL,
    content_hash    VARCHAR,
    reason          VARCHAR NOT NULL,
    details         JSON,
    run_id          VARCHAR,
    quarantined_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- Inputs labelled with a caveat (a truncated recording labelled up to where it decodes).
CREATE TABLE recording_warnings (
    warning_id      VARCHAR PRIMARY KEY,         -- sha256(kind:source:content_hash)[:32]
    kind            VARCHAR NOT NULL,            -- truncated, trailing_bytes
    source          VARCHAR NOT NULL,
    session_id      VARCHAR,
    content_hash    VARCHAR,
    declared_s      DOUBLE,
    found_s         DOUBLE,
    message         VARCHAR NOT NULL,
    run_id          VARCHAR,
    warned_at       TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

CREATE TABLE validation_results (
    validation_id   VARCHAR PRIMARY KEY,         -- sha256(run_id:suite:target)[:32]
    run_id          VARCHAR,
    suite           VARCHAR NOT NULL,
    target          VARCHAR NOT NULL,            -- what was validated (a file, a batch)
    success         BOOLEAN NOT NULL,
    n_expectations  INTEGER,
    n_failed        INTEGER,
    details         JSON,
    validated_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

CREATE TABLE current_model (
    singleton      BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    model_version  VARCHAR NOT NULL,
    pinned_at      TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    pinned_by      VARCHAR
);

-- What was said (004): one transcript per utterance and transcription model; text redacted,
-- '' with empty_reason when nothing trustworthy was heard; nothing at all with SER_TRANSCRIBE=false.
CREATE TABLE transcripts (
    utterance_id          VARCHAR NOT NULL,
    model                 VARCHAR NOT NULL,      -- the Whisper model: name@sha256[:12]
    text                  VARCHAR NOT NULL,      -- redacted; '' when empty_reason is set
    language              VARCHAR,               -- ISO 639-1 code the text was written in
    language_source       VARCHAR,               -- manifest, detected, english-only model
    language_probability  DOUBLE,                -- detection's probability (NULL unless detected)
    avg_logprob           DOUBLE,                -- Whisper's mean log-probability of its tokens
    no_speech_prob        DOUBLE,                -- Whisper's probability that nothing was said
    empty_reason          VARCHAR,               -- NULL when text holds words
    n_redacted            INTEGER NOT NULL DEFAULT 0,
    ingest_run_id         VARCHAR,
    transcribed_at        TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (utterance_id, model)
);
