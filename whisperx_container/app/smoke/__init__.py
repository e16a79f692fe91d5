"""The GPU smoke test (`python -m app.smoke`) and the dialogue it transcribes."""
