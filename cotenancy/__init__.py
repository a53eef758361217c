"""cotenancy: predict and avoid conflicts between VMs that share a host."""

__version__ = "0.1.0"
