"""End-to-end workflows that chain the stages (the ``demo`` verb)."""
