"""streamserve's API app served by granian instead of uvicorn (the server comparison of
the HTTP benchmark): settings from the environment, as ``streamserve api`` reads them.

granian --interface asgi --loop uvloop bench.jobs.http_granian:app
"""

from __future__ import annotations

from streamserve.settings import load_settings
from streamserve.wiring import Runtime, api_service

_settings = load_settings()
app = api_service(Runtime(_settings)).app
