-- Which model versions are loaded, which one do the views report, and how many utterances did each label?
-- params:
SELECT m.model_version, m.created_at, m.promoted_at,
       m.model_version = (SELECT model_version FROM v_current_model) AS is_current,
       count(p.utterance_id) AS n_predictions, round(avg(p.confidence), 4) AS mean_confidence,
       CAST(m.metrics AS VARCHAR) AS metrics
FROM model_versions m
LEFT JOIN predictions p USING (model_version)
GROUP BY ALL
ORDER BY m.created_at, m.model_version;
