"""The long-running daemon: clock-driven feed, per-strategy inboxes, control socket."""
