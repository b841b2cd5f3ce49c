-- Is negative emotion (sad, angry, fearful, disgust) rising or falling week over week?
-- params: survey
SELECT week, n_utterances, n_negative, round(negative_share, 4) AS negative_share,
       round(week_over_week_change, 4) AS week_over_week_change
FROM v_negative_trend
WHERE survey_id = $survey
ORDER BY week;
