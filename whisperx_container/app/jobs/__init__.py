"""Durable transcription jobs: the store on disk and the runner that executes and resumes them."""
