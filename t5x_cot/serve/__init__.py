"""`t5x-cot serve`: a trained student behind an OpenAI-compatible HTTP API.

Stack: Starlette (the maintained ASGI toolkit FastAPI is built on) + uvicorn. FastAPI's
value is declarative request models with automatic 422 answers and OpenAPI pages; this
server must answer every malformed body with OpenAI's error JSON and 4xx statuses instead,
so it parses bodies itself (`protocol`) and Starlette's routing and streaming responses are
all it needs, with one dependency less. uvicorn is the reference ASGI server (h11/httptools,
uvloop when installed).

Modules: `protocol` (wire format and validation), `batcher` (dynamic batching),
`engine` (checkpoint, tokenisation, bucketed decoding), `app` (routes and limits),
`cli` (the subcommand).
"""
