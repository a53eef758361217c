"""The watcher integration."""
