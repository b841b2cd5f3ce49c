-- What share of a survey's utterances carried each emotion, week by week?
-- Each share with its count (n_utterances of week_utterances), 95% interval and expected share (mean probability).
-- params: survey
SELECT week, label, n_utterances, week_utterances, round(share, 4) AS share,
       round(share_low, 4) AS share_low, round(share_high, 4) AS share_high, round(expected_share, 4) AS expected_share
FROM v_emotion_share_weekly
WHERE survey_id = $survey
ORDER BY week, share DESC, label;
