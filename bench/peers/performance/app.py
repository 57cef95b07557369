"""bench/performance_middleware_cost.sh's app: a constant route (answered by the engine), with PerformanceMiddleware
when PERF=1 (thresholds never reached: the cost of checking)."""
import os
from covet import CovetPy
from covet.middleware.performance import PerformanceMiddleware

app = CovetPy(openapi_url=None, docs_url=None, redoc_url=None)

@app.get("/plaintext", constant=True)
def plaintext():
    return "Hello, World!"

if os.environ.get("PERF") == "1":
    app.add_middleware(PerformanceMiddleware, sla_ms=100, routes={"/plaintext": 50})
