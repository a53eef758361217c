"""The nova driver."""
