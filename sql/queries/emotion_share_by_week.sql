-- What share of a survey's utterances carried each emotion, week by week?
-- params: survey
SELECT week, label, n_utterances, round(share, 4) AS share
FROM v_emotion_share_weekly
WHERE survey_id = $survey
ORDER BY week, share DESC, label;
