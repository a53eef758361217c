"""A tiny Prometheus on a loopback port: the HTTP API's ``query_range`` with canned series.

It answers like Prometheus does (``status``/``data.resultType = matrix``, values as
``[unix_time, "string"]``, end inclusive, points every ``step``) and records every request, so
tests check both what the datasource asks and what it makes of the answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

#: series value at a time: f(labels, t) -> value (float('nan') for a gap)
SeriesFn = Callable[[float], float]


@dataclass
class FakePrometheus:
    url: str = ""
    #: query text -> list of (labels, value function)
    series: dict[str, list[tuple[dict[str, str], SeriesFn]]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_with: tuple[int, dict] | None = None

    def answer(self, params: dict[str, str]) -> tuple[int, dict]:
        if self.fail_with is not None:
            return self.fail_with
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
        if (end - start) / step > 11_000:
            return 400, {
                "status": "error",
                "errorType": "bad_data",
                "error": "exceeded maximum resolution of 11,000 points per timeseries",
            }
        result = []
        for labels, fn in self.series.get(params["query"], []):
            values, t = [], start
            while t <= end + 1e-9:
                values.append([t, repr(fn(t)) if fn(t) == fn(t) else "NaN"])
                t += step
            result.append({"metric": labels, "values": values})
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parsed = urlparse(self.path)
            if parsed.path != "/api/v1/query_range":
                self.send_error(404)
                return
            params = {k: v[0] for k, v in parse_qs(parsed.query).items()}
            fake.requests.append(params)
            fake.headers.append(dict(self.headers))
            status, body = fake.answer(params)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
