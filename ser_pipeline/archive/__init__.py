"""The archive as the firm keeps it: manifests, session recordings, speaker turns, utterances cut from them.

The public names of the modules below are importable from the package itself; each
module is imported on first use (lazy_loader, as librosa does), so importing the package
costs nothing.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=['manifest', 'segmentation', 'skeleton'],
    submod_attrs={
        'manifest': ['REQUIRED_MANIFEST_COLUMNS', 'OPTIONAL_MANIFEST_COLUMNS', 'MANIFEST_COLUMNS', 'PARTICIPANT_COLUMNS', 'TURN_COLUMNS', 'Participant', 'Turn', 'Session', 'RejectedSession', 'Survey', 'read_turns_csv', 'read_rttm', 'resolve_inside', 'read_survey', 'ArchiveScan', 'scan_archive', 'list_surveys', 'read_archive'],
        'segmentation': ['VadConfig', 'Utterance', 'utterance_id', 'frame_levels_db', 'stream_frame_levels_db', 'voiced_threshold_db', 'spans_from_levels', 'segment_energy', 'segment_file', 'utterances_from_turns', 'segment_recording'],
        'skeleton': ['ManifestSkeleton', 'parse_utc_offset', 'session_id_from_name', 'manifest_skeleton', 'existing_manifest_files', 'write_manifest_skeleton', 'skeleton_text'],
    },
)
