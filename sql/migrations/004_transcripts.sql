-- 004: what was said. One transcript per utterance and transcription model, keyed like the
-- predictions, so a re-run adds nothing and a new model's transcripts sit beside the old.
--
-- `text` is redacted before it is stored (emails, phone numbers, URLs and card-like numbers
-- become [EMAIL], [PHONE], [URL], [CARD]; `n_redacted` counts them). An utterance that could
-- not be transcribed has text '' and `empty_reason` says why (no speech, a repeated phrase,
-- a language the model cannot write, ...): never invented text. With SER_TRANSCRIBE=false
-- nothing is written here at all.
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
