"""The HTTP layer: FastAPI app, routers, response schemas and formats, errors, limits, metrics, the queue.

It parses a request, hands it to app.inference on the inference thread, and renders the result; it owns
no model code.
"""
