// Tests for the TLS context and transport.
