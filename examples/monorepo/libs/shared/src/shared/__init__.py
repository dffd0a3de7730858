"""Code every package uses."""
