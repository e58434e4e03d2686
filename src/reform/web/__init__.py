"""The local web page of ``reform serve`` and the JSON API behind it; no model code.

``server.serve`` binds the socket and runs uvicorn; ``app.create_app`` builds the
FastAPI application from the pieces below, each importable on its own:

    security.py   who may call: loopback Host names, the access token, same-origin writes
    state.py      one read connection to the catalogue and a snapshot rebuilt when it changes
    projection.py the 2-D map of the embeddings (PCA), cached per embedding model
    media.py      audio by song id: the file's bytes with ranges, or decoded to WAV
    jobs.py       scan, embed and train in a background thread, with live progress
    routes.py     the endpoints
    static/       the page: index.html, app.js, style.css (no build step, no CDN)
"""
