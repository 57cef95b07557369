"""CovetPy peer for bench/ab.sh: app_sync's plain `def` handlers, run inline on the loop thread instead of the pool."""
from app_sync import app

app.sync_handlers = "inline"
