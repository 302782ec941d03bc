"""Command-line experiment scripts (absl flags), one per pipeline step; each is also a console script."""
