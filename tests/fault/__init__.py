"""Fault-injection suite (issue 12): scenarios that break things on purpose against a real server.

`harness` starts the targets (the native `hello` example, a Python app under ``covet run``), drives them
with an asyncio HTTP/1.1 load generator and samples their memory; `scenarios` holds one function per fault;
`run.py` is the command line (what ``scripts/soak.sh`` calls); ``test_fault_short.py`` the short pytest run.
"""
