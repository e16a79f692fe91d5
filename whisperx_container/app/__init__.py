"""whisperx-asr: diarized speech-to-text behind an OpenAI-compatible API."""

__version__ = "0.1.0"
