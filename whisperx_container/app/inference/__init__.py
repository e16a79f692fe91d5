"""The models: decoding, windows, VAD + diarization, Whisper, alignment, and the pipeline that runs them.

Nothing here imports FastAPI; the HTTP layer (app.api) calls in. Importing this package imports none of
its modules, so the numpy-only ones (audio, windows) load without torch.
"""
