-- How do participant segments compare: the emotion shares per value of one attribute (age_band, gender, market or segment)?
-- Each share with its count (n_utterances of group_utterances), 95% interval and expected share (mean probability).
-- params: survey, attribute=segment
SELECT value, label, n_utterances, group_utterances, round(share, 4) AS share,
       round(share_low, 4) AS share_low, round(share_high, 4) AS share_high, round(expected_share, 4) AS expected_share
FROM v_emotion_share_by_segment
WHERE survey_id = $survey AND attribute = $attribute
ORDER BY value, share DESC, label;
