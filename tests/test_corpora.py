"""Corpus readers: real RAVDESS and TESS from ../shared/data, generated CREMA-D and SAVEE trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_pipeline.training.corpora import (
    ITEM_COLUMNS,
    detect_corpus,
    items_frame,
    read_corpus,
    read_crema_d,
    read_ravdess,
    read_savee,
    read_synth,
    read_tess,
    synth_file_name,
)
from ser_pipeline.labels import EMOTIONS, LabelSet


def _tiny_wav(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sf.write(path, (0.01 * rng.standard_normal(800)).astype(np.float32), 16_000, subtype="PCM_16")


# --- RAVDESS (real) --------------------------------------------------------------------------


@pytest.mark.realdata
def test_ravdess_real_960_files_16_actors_8_emotions(ravdess_dir):
    skipped = []
    items = read_ravdess(str(ravdess_dir), skipped)
    assert skipped == []
    frame = items_frame(items)
    assert len(frame) == 960
    assert frame["speaker"].nunique() == 16
    assert set(frame["emotion"]) == set(EMOTIONS)
    # RAVDESS: 60 clips per actor; neutral has no strong intensity, so half as many.
    counts = frame["emotion"].value_counts()
    assert counts["neutral"] == 64 and all(counts[e] == 128 for e in EMOTIONS if e != "neutral")
    actor_no = frame["speaker"].str.removeprefix("ravdess:").astype(int)
    assert (frame["gender"] == np.where(actor_no % 2 == 1, "male", "female")).all()
    assert set(frame["intensity"]) == {"normal", "strong"}
    assert set(frame["sentence"]) == {"Kids are talking by the door", "Dogs are sitting by the door"}
    assert frame["utterance_id"].is_unique
    assert all(u.startswith("ravdess:03-01-") for u in frame["utterance_id"])
    assert frame["path"].str.endswith(".flac").all()
    one = next(i for i in items if i.utterance_id == "ravdess:03-01-05-02-01-01-12")
    assert (one.emotion, one.intensity, one.speaker, one.gender) == ("angry", "strong", "ravdess:12", "female")
    assert detect_corpus(str(ravdess_dir)) == "ravdess"


def test_ravdess_skips_song_video_and_bad_codes(tmp_path):
    good = "03-01-08-02-02-01-07.wav"
    for name in (good, "03-02-03-01-01-01-01.wav", "01-01-03-01-01-01-01.wav", "03-01-09-01-01-01-01.wav", "notes.wav"):
        _tiny_wav(tmp_path / name)
    skipped = []
    items = read_ravdess(tmp_path.as_uri(), skipped)
    assert [i.utterance_id for i in items] == ["ravdess:03-01-08-02-02-01-07"]
    assert items[0].emotion == "surprised" and items[0].gender == "male"
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert "vocal channel 02" in reasons["03-02-03-01-01-01-01.wav"]
    assert "modality 01" in reasons["01-01-03-01-01-01-01.wav"]
    assert "emotion code 09" in reasons["03-01-09-01-01-01-01.wav"]
    assert "notes.wav" in reasons


# --- TESS (real) -----------------------------------------------------------------------------


@pytest.mark.realdata
def test_tess_real_420_files(tess_dir):
    skipped = []
    frame = items_frame(read_tess(str(tess_dir), skipped))
    assert skipped == []
    assert len(frame) == 420
    assert set(frame["speaker"]) == {"tess:OAF", "tess:YAF"}
    assert (frame["gender"] == "female").all()
    assert dict(frame.groupby("speaker")["age"].first()) == {"tess:OAF": 64, "tess:YAF": 26}
    assert set(frame["emotion"]) == set(EMOTIONS) - {"calm"}
    assert (frame.groupby(["speaker", "emotion"]).size() == 30).all()
    # the folder is "pleasant_surprise" while the file says "ps"
    surprised = frame[frame["emotion"] == "surprised"]
    assert surprised["path"].str.contains("pleasant_surprise").all()
    assert surprised["utterance_id"].str.endswith("_ps").all()
    assert frame["sentence"].str.fullmatch(r"[a-z]+").all()
    assert detect_corpus(str(tess_dir)) == "tess"


@pytest.mark.realdata
def test_tess_quirk_names_folder_double_underscore_file(quirks_dir):
    items = read_corpus("auto", str(quirks_dir))
    got = {i.utterance_id: (i.speaker, i.emotion, i.sentence) for i in items}
    assert got["tess:OAF_fear__OAF_food_fear"] == ("tess:OAF", "fearful", "food")
    assert got["tess:YAF_sad__YAF_beg_sad"] == ("tess:YAF", "sad", "beg")
    assert len(items) == 5


def test_tess_odd_casing_and_unknown_emotion(tmp_path):
    for name in ("OAF_back_Fear.wav", "YAF_date_PS.wav", "YAF_kite_pleasant_surprised.wav", "YAF_mop_bored.wav", "XYZ_dog_sad.wav"):
        _tiny_wav(tmp_path / name)
    skipped = []
    items = {i.utterance_id: i for i in read_tess(str(tmp_path), skipped)}
    assert items["tess:OAF_back_Fear"].emotion == "fearful"
    assert items["tess:YAF_date_PS"].emotion == "surprised"
    assert items["tess:YAF_kite_pleasant_surprised"].sentence == "kite"
    assert sorted(Path(s.path).name for s in skipped) == ["XYZ_dog_sad.wav", "YAF_mop_bored.wav"]


# --- CREMA-D (generated tree) ----------------------------------------------------------------

CREMA_NAMES = [
    "1001_DFA_ANG_XX",
    "1001_IEO_HAP_HI",
    "1002_TIE_SAD_LO",
    "1002_IOM_FEA_MD",
    "1091_WSI_DIS_XX",
    "1091_TSI_NEU_XX",
]


def _crema_tree(root: Path) -> Path:
    audio = root / "AudioWAV"
    for n, name in enumerate(CREMA_NAMES):
        _tiny_wav(audio / f"{name}.wav", seed=n)
    _tiny_wav(audio / "1001_XYZ_ANG_XX.wav")  # unknown sentence code
    _tiny_wav(audio / "1001_DFA_BOR_XX.wav")  # unknown emotion
    return audio


def test_crema_d_with_demographics_one_level_up(tmp_path):
    audio = _crema_tree(tmp_path)
    (tmp_path / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
        "1002,21,Female,Caucasian,Not Hispanic\n1091,29,Female,Asian,Not Hispanic\n"
    )
    skipped = []
    items = {i.utterance_id: i for i in read_crema_d(audio.as_uri(), skipped)}
    assert len(items) == 6
    a = items["crema_d:1001_DFA_ANG_XX"]
    assert (a.speaker, a.gender, a.age, a.emotion, a.intensity, a.sentence) == (
        "crema_d:1001", "male", 51, "angry", None, "Don't forget a jacket"
    )
    b = items["crema_d:1002_IOM_FEA_MD"]
    assert (b.gender, b.age, b.emotion, b.intensity, b.sentence) == ("female", 21, "fearful", "medium", "I'm on my way to the meeting")
    assert items["crema_d:1001_IEO_HAP_HI"].intensity == "high"
    assert items["crema_d:1091_TSI_NEU_XX"].emotion == "neutral"
    reasons = sorted(s.reason for s in skipped)
    assert any("sentence code XYZ" in r for r in reasons) and any("emotion code BOR" in r for r in reasons)
    assert detect_corpus(audio.as_uri()) == "crema_d"


def test_crema_d_demographics_beside_audio(tmp_path):
    audio = _crema_tree(tmp_path)
    (audio / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1091,29,Female,Asian,Not Hispanic\n")
    items = {i.utterance_id: i for i in read_corpus("crema-d", str(audio))}
    assert (items["crema_d:1091_WSI_DIS_XX"].gender, items["crema_d:1091_WSI_DIS_XX"].age) == ("female", 29)
    # actors missing from the table stay unknown rather than guessed
    assert (items["crema_d:1001_DFA_ANG_XX"].gender, items["crema_d:1001_DFA_ANG_XX"].age) == (None, None)


def test_crema_d_without_demographics(tmp_path):
    audio = _crema_tree(tmp_path)
    frame = items_frame(read_crema_d(str(audio)))
    assert len(frame) == 6
    assert frame["gender"].isna().all() and frame["age"].isna().all()
    assert set(frame["emotion"]) == {"angry", "happy", "sad", "fearful", "disgust", "neutral"}


# --- SAVEE (generated trees, both layouts) ---------------------------------------------------


def test_savee_flat_layout(tmp_path):
    names = ["DC_a01", "DC_sa03", "JE_su15", "JK_n30", "KL_d02", "KL_f05", "KL_h11"]
    for n, name in enumerate(names):
        _tiny_wav(tmp_path / f"{name}.wav", seed=n)
    _tiny_wav(tmp_path / "XX_a01.wav")
    skipped = []
    items = {i.utterance_id: i for i in read_savee(str(tmp_path), skipped)}
    assert set(items) == {f"savee:{n}" for n in names}
    assert {k: v.emotion for k, v in items.items()} == {
        "savee:DC_a01": "angry", "savee:DC_sa03": "sad", "savee:JE_su15": "surprised", "savee:JK_n30": "neutral",
        "savee:KL_d02": "disgust", "savee:KL_f05": "fearful", "savee:KL_h11": "happy",
    }
    assert {v.gender for v in items.values()} == {"male"}
    assert items["savee:JE_su15"].speaker == "savee:JE"
    assert [Path(s.path).name for s in skipped] == ["XX_a01.wav"]
    assert detect_corpus(str(tmp_path)) == "savee"


def test_savee_speaker_folder_layout(tmp_path):
    root = tmp_path / "AudioData"
    for n, (speaker, code) in enumerate([("DC", "a01"), ("JE", "sa02"), ("JK", "su03"), ("KL", "n04"), ("KL", "h05")]):
        _tiny_wav(root / speaker / f"{code}.wav", seed=n)
    _tiny_wav(root / "Info" / "a01.wav")  # not a speaker folder
    skipped = []
    items = {i.utterance_id: i for i in read_corpus("savee", root.as_uri(), skipped)}
    assert set(items) == {"savee:DC_a01", "savee:JE_sa02", "savee:JK_su03", "savee:KL_n04", "savee:KL_h05"}
    assert items["savee:JK_su03"].speaker == "savee:JK" and items["savee:JK_su03"].emotion == "surprised"
    assert len(skipped) == 1 and "unknown SAVEE speaker 'Info'" in skipped[0].reason
    assert detect_corpus(root.as_uri()) == "savee"


# --- synth names, detection, frames, merges --------------------------------------------------


def test_synth_names_round_trip(tmp_path):
    name = synth_file_name("s03", "female", "angry", 2)
    assert name == "SYN_s03_female_angry_02.wav"
    _tiny_wav(tmp_path / name)
    _tiny_wav(tmp_path / "_truth.wav")  # private files are ignored, not reported
    (item,) = read_synth(str(tmp_path))
    assert (item.speaker, item.gender, item.emotion, item.utterance_id) == ("synth:s03", "female", "angry", "synth:SYN_s03_female_angry_02")
    with pytest.raises(ValueError):
        synth_file_name("s_3", "female", "angry", 1)


def test_detect_corpus_refuses_unknown_or_empty(tmp_path):
    with pytest.raises(ValueError, match="no audio"):
        detect_corpus(str(tmp_path))
    for name in ("a.wav", "b.wav", "03-01-01-01-01-01-01.wav"):
        _tiny_wav(tmp_path / name)
    with pytest.raises(ValueError, match="cannot tell"):
        detect_corpus(str(tmp_path))
    with pytest.raises(ValueError, match="unknown corpus"):
        read_corpus("iemocap", str(tmp_path))


def test_items_frame_columns_and_merge(tmp_path):
    for name in ("03-01-02-01-01-01-01.wav", "03-01-01-01-01-01-02.wav", "03-01-03-02-01-01-03.wav"):
        _tiny_wav(tmp_path / name)
    items = read_ravdess(str(tmp_path))
    frame = items_frame(items, LabelSet.from_merge({"calm": "neutral"}))
    assert list(frame.columns) == [*ITEM_COLUMNS, "label"]
    assert dict(zip(frame["emotion"], frame["label"])) == {"calm": "neutral", "neutral": "neutral", "happy": "happy"}
    empty = items_frame([])
    assert list(empty.columns) == list(ITEM_COLUMNS) and len(empty) == 0


@pytest.mark.s3
def test_crema_d_on_s3_with_demographics(s3_bucket, tmp_path):
    from ser_pipeline.storage import write_bytes_atomic

    audio = _crema_tree(tmp_path)
    for wav in audio.glob("*.wav"):
        write_bytes_atomic(f"{s3_bucket}/crema/AudioWAV/{wav.name}", wav.read_bytes())
    write_bytes_atomic(f"{s3_bucket}/crema/VideoDemographics.csv", b"ActorID,Age,Sex,Race,Ethnicity\n1002,21,Female,Caucasian,Not Hispanic\n")
    skipped = []
    items = {i.utterance_id: i for i in read_corpus("auto", f"{s3_bucket}/crema/AudioWAV", skipped)}
    assert len(items) == 6 and len(skipped) == 2
    item = items["crema_d:1002_TIE_SAD_LO"]
    assert item.path == f"{s3_bucket}/crema/AudioWAV/1002_TIE_SAD_LO.wav"
    assert (item.gender, item.age, item.intensity) == ("female", 21, "low")
