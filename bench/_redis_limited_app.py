"""The smallest service rate-limited through Redis by instrument_app (RATE_LIMIT_ENABLED, RATE_LIMIT_REDIS_URL).

bench/bench_hostile.py serves it with RATE_LIMIT_REDIS_URL pointing at a loopback
server that accepts connections and never answers.
"""

from fastapi import FastAPI

import amas_otel
from amas_otel.fastapi import instrument_app

amas_otel.configure()
app = FastAPI()


@app.get("/api/data")
async def data() -> dict:
    return {"ok": True}


instrument_app(app)
