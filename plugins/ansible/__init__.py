"""The ansible integration."""
