-- How do participant segments compare: the emotion shares per value of one attribute (age_band, gender, market or segment)?
-- params: survey, attribute=segment
SELECT value, label, n_utterances, round(share, 4) AS share
FROM v_emotion_share_by_segment
WHERE survey_id = $survey AND attribute = $attribute
ORDER BY value, share DESC, label;
