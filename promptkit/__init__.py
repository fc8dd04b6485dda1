"""promptkit (work in progress)."""
