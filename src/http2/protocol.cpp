// HTTP/2 protocol handler: filled in by the HTTP/2 work.
