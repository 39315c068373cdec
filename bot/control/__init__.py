"""The control socket: JSON requests over WebSocket on a Unix socket (and optionally loopback TCP)."""
