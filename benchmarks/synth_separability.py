"""How learnable the generated emotions are: speaker-grouped accuracy of a simple classifier.

Logistic regression on per-clip mean/std of 20 MFCCs, GroupKFold over speakers, on a
``generate_corpus`` corpus; the reference is a stratified random guesser scored on the same
folds in the same run. The generator aims for "well above chance, but not trivial".

    PYTHONPATH=. python benchmarks/synth_separability.py [n_speakers] [clips_per_emotion]
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np


def main(n_speakers: int = 8, per_emotion: int = 6) -> None:
    import librosa
    import pandas as pd
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ser_pipeline.audio.decode import load_audio
    from ser_pipeline.synthetic import generate_corpus

    with tempfile.TemporaryDirectory() as folder:
        frame = generate_corpus(folder, n_speakers=n_speakers, utterances_per_emotion=per_emotion, seed=0)
        feats = []
        for path in frame["path"]:
            mfcc = librosa.feature.mfcc(y=load_audio(path).samples, sr=22_050, n_mfcc=20)
            feats.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    x, y, groups = np.array(feats), frame["emotion"], frame["speaker"]
    cv = GroupKFold(4)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    acc = cross_val_score(model, x, y, groups=groups, cv=cv).mean()
    chance = cross_val_score(DummyClassifier(strategy="stratified", random_state=0), x, y, groups=groups, cv=cv).mean()
    print(f"{len(frame)} clips, {n_speakers} speakers, speaker-grouped 4-fold")
    print(f"logistic regression on MFCC mean/std: {acc:.3f}; random guesser: {chance:.3f}; ratio {acc / chance:.1f}x")
    print(pd.crosstab(y, cross_val_predict(model, x, y, groups=groups, cv=cv), rownames=["true"], colnames=["predicted"]))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
