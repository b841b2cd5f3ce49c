-- How did labels move between two model versions (old label -> new label, with counts)?
-- params: old_version, new_version
SELECT old.label AS old_label, new.label AS new_label, count(*) AS n_utterances,
       round(avg(new.confidence - old.confidence), 4) AS mean_confidence_change
FROM predictions old
JOIN predictions new ON new.utterance_id = old.utterance_id
WHERE old.model_version = $old_version AND new.model_version = $new_version
GROUP BY ALL
ORDER BY n_utterances DESC, old_label, new_label;
