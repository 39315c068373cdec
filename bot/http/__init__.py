"""The daemon's HTTP server: `/api/v1` (the control commands over HTTP), the web view, Prometheus's `/metrics`."""
