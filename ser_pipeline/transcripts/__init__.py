"""What was said: each utterance written down by the configured Whisper model, beside its
emotion label.

The modules, one idea each: ``whisper`` (an utterance's audio to text with Whisper's own
confidence; the decoder stopped where the speech ends), ``language`` (the language to write
in: the manifest's, or detected per session; an English-only model refuses the others),
``quality`` (what is stored empty instead of invented: no speech, a repeated phrase),
``redaction`` (emails, phone numbers, URLs and card-like numbers removed before anything
is stored) and ``batch`` (a nightly batch's utterances to the warehouse's rows).
"""
