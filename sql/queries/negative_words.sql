-- Which words set a survey's negative answers apart, question by question?
-- For each question, the words used more in its negative answers (labels.NEGATIVE_EMOTIONS, emotions.is_negative) than
-- in the baseline: baseline=question (the default) the question's other answers, so the topic's own words (price,
-- bottle) cancel out; baseline=survey all the survey's other utterances (any question or none, any label).
-- Score: the log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' words",
-- eq. 16 and 22). With y_a, n_a the word's count and the count of all words in the question's negative answers,
-- y_b, n_b the same in the baseline, and the prior a_w = the word's count in all the survey's quotes, a_0 = all their words:
--   log_odds = ln((y_a + a_w) / (n_a + a_0 - y_a - a_w)) - ln((y_b + a_w) / (n_b + a_0 - y_b - a_w))
--   z        = log_odds / sqrt(1 / (y_a + a_w) + 1 / (y_b + a_w))
-- ranked by z (the log-odds in units of its standard error: high for words that are both skewed and frequent), the
-- top `limit` per question with z > 0 and at least min_count uses in the question's negative answers.
-- Words: the macro words(text) of sql/views.sql (lower-cased, redaction placeholders and stop-words dropped, 2+
-- characters). Empty transcripts have no words; utterances that answer no question count in the prior (and in
-- baseline=survey) only.
-- params: survey, baseline=question, min_count=3, limit=10
WITH chosen AS (
    SELECT CASE WHEN $baseline IN ('question', 'survey') THEN $baseline
                ELSE error('baseline must be question or survey, not ' || $baseline) END AS baseline
), words AS (
    SELECT question, utterance_id, is_negative, word FROM v_quote_words WHERE survey_id = $survey
), prior AS (         -- a_w, and a_0 = all the survey's words
    SELECT word, count(*) AS a_w, CAST(sum(count(*)) OVER () AS BIGINT) AS a_0 FROM words GROUP BY word
), per_question AS (  -- each word's uses in each question's negative and other answers
    SELECT question, word,
           count(*) FILTER (WHERE is_negative) AS y_negative,
           count(DISTINCT utterance_id) FILTER (WHERE is_negative) AS negative_utterances,
           count(*) FILTER (WHERE NOT is_negative) AS y_other
    FROM words
    WHERE question IS NOT NULL
    GROUP BY question, word
), totals AS (        -- n_a, and n_b of baseline=question
    SELECT question, CAST(sum(y_negative) AS BIGINT) AS n_negative, CAST(sum(y_other) AS BIGINT) AS n_other
    FROM per_question
    GROUP BY question
), counted AS (
    SELECT q.question, q.word, q.y_negative AS y_a, q.negative_utterances, t.n_negative AS n_a,
           CASE c.baseline WHEN 'question' THEN q.y_other ELSE p.a_w - q.y_negative END AS y_b,
           CASE c.baseline WHEN 'question' THEN t.n_other ELSE p.a_0 - t.n_negative END AS n_b,
           p.a_w, p.a_0
    FROM per_question q
    JOIN totals t USING (question)
    JOIN prior p USING (word)
    CROSS JOIN chosen c
    WHERE q.y_negative >= CAST($min_count AS INTEGER)
), scored AS (
    SELECT *,
           ln((y_a + a_w) / (n_a + a_0 - y_a - a_w)) - ln((y_b + a_w) / (n_b + a_0 - y_b - a_w)) AS log_odds,
           log_odds / sqrt(1 / (y_a + a_w) + 1 / (y_b + a_w)) AS z
    FROM counted
)
SELECT question, row_number() OVER (PARTITION BY question ORDER BY z DESC, word) AS rank, word,
       y_a AS n_in_negative, negative_utterances AS n_negative_utterances, y_b AS n_in_baseline,
       n_a AS negative_words, n_b AS baseline_words, a_w AS prior_count,
       round(log_odds, 4) AS log_odds, round(z, 4) AS z
FROM scored
WHERE z > 0
QUALIFY rank <= CAST($limit AS INTEGER)
ORDER BY question, rank;
