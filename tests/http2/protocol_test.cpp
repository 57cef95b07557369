// Tests for the HTTP/2 protocol handler.
