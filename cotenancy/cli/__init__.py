"""cotenancy.cli."""
