-- Is negative emotion (sad, angry, fearful, disgust) rising or falling from week to week?
-- Each share with its count and 95% interval; the change is from the previous week with data.
-- params: survey
SELECT week, n_utterances, n_negative, round(negative_share, 4) AS negative_share,
       round(negative_share_low, 4) AS share_low_95, round(negative_share_high, 4) AS share_high_95,
       round(expected_negative_share, 4) AS expected_share,
       weeks_since_previous, round(change_from_previous, 4) AS change_from_previous
FROM v_negative_trend
WHERE survey_id = $survey
ORDER BY week;
