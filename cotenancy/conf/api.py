"""Options of the open API ([api]): where it listens, who may call it, how much it accepts."""

from oslo_config import cfg

GROUP = "api"

OPTS = [
    cfg.StrOpt(
        "listen",
        default="127.0.0.1:8780",
        help="HOST:PORT the API listens on ([::1]:8780 for IPv6). Anything but loopback needs "
        "auth_token, so predictions and allocation requests are never open to the network.",
    ),
    cfg.StrOpt(
        "auth_token",
        secret=True,
        help="When set, every request must carry 'Authorization: Bearer <auth_token>'.",
    ),
    cfg.StrOpt("cert_file", help="PEM certificate (chain) to serve HTTPS; needs key_file."),
    cfg.StrOpt("key_file", help="PEM private key matching cert_file."),
    cfg.IntOpt(
        "max_body_bytes",
        default=65536,
        min=1024,
        help="Largest request body accepted; bigger ones get 413.",
    ),
    cfg.IntOpt(
        "max_list",
        default=1000,
        min=1,
        help="Largest page a list endpoint returns (the limit= query parameter is capped by it).",
    ),
    cfg.IntOpt(
        "max_forecast_horizon",
        default=288,
        min=1,
        help="Longest forecast horizon, in control-loop intervals, a client may ask for.",
    ),
    cfg.IntOpt(
        "idempotency_key_lifetime",
        default=86400,
        min=60,
        help="Seconds the first answer to a POST sent with an Idempotency-Key header is kept: a "
        "retry with the same key and body within it gets that answer back and stores nothing; "
        "after it the key may be used again.",
    ),
    cfg.FloatOpt(
        "request_timeout",
        default=30.0,
        min=1.0,
        help="Seconds a client may take to send a request before the connection is closed.",
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, list(OPTS))]
