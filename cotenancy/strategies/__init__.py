"""cotenancy.strategies."""
