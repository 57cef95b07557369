// TLS transport over memory BIOs: filled in by the TLS work.
