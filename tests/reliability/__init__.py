"""The reliability suite: a bad-input corpus made here, run through every entry point of fakescope."""
