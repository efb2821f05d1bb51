"""Code every world and the platform share: errors, validation helpers, files."""
