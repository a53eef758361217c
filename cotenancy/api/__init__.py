"""The open API: other programs read predictions and steer allocation over HTTP (``/v1``)."""

from cotenancy.api.server import Api, ApiServer, make_server

__all__ = ["Api", "ApiServer", "make_server"]
