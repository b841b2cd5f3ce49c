-- Is negative emotion (sad, angry, fearful, disgust) rising or falling from week to week?
-- Each share with its count (n_negative of n_utterances), 95% interval and expected share (mean P(negative));
-- the change is from the previous week with data.
-- params: survey
SELECT week, n_utterances, n_negative, round(negative_share, 4) AS negative_share,
       round(negative_share_low, 4) AS negative_share_low, round(negative_share_high, 4) AS negative_share_high,
       round(expected_negative_share, 4) AS expected_negative_share,
       weeks_since_previous, round(change_from_previous, 4) AS change_from_previous
FROM v_negative_trend
WHERE survey_id = $survey
ORDER BY week;
