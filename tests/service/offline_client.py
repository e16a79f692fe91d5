"""Runs inside a container with no network: waits for the service, posts a WAV, prints the transcript.

Standard library only (the image has no HTTP client for tests); copied in by test_lifecycle.py.
"""

import json
import sys
import time
import urllib.request
import uuid

BASE = "http://127.0.0.1:8002"

for _ in range(480):
    try:
        with urllib.request.urlopen(f"{BASE}/health") as response:
            if json.load(response)["status"] != "loading":
                break
    except OSError:
        pass
    time.sleep(0.5)

boundary = uuid.uuid4().hex
with open(sys.argv[1], "rb") as f:
    audio = f.read()
head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n\r\n'
body = head.encode() + audio + f"\r\n--{boundary}--\r\n".encode()
request = urllib.request.Request(
    f"{BASE}/v1/audio/transcribe-with-speakers", body, {"content-type": f"multipart/form-data; boundary={boundary}"}
)
with urllib.request.urlopen(request, timeout=120) as response:
    print(json.load(response)["text"])
