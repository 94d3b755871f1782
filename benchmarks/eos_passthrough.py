"""A minimal pass-through in front of `transformers serve` for load generators that send vLLM-only fields.

GuideLLM sets `ignore_eos: true` whenever a request has a fixed output length, and `transformers serve` refuses
unknown fields (HTTP 422); GuideLLM 0.8 has no setting that leaves the field out. This proxy listens on
127.0.0.1, drops the fields named in DROP from JSON request bodies, and forwards everything else, streaming
the answer back line by line as it arrives. Without `ignore_eos` the engine may end a stream early at its EOS
token; the tools count such requests' real output lengths.

    python benchmarks/eos_passthrough.py --listen 8766 --target 8765
"""

from __future__ import annotations

import argparse
import http.client
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DROP = ("ignore_eos",)
MAX_BODY = 16 << 20


def make_handler(target_port: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet: one line per request would flood the log
            return

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(length) if length else None
            if body and self.headers.get("Content-Type", "").startswith("application/json"):
                data = json.loads(body)
                if isinstance(data, dict):
                    for key in DROP:
                        data.pop(key, None)
                    body = json.dumps(data).encode()
            conn = http.client.HTTPConnection("127.0.0.1", target_port, timeout=300)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "host")}
            if body is not None:
                headers["Content-Length"] = str(len(body))
            conn.request(method, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:
                line = resp.readline(1 << 20)
                if not line:
                    break
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            conn.close()

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", type=int, required=True)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.listen), make_handler(args.target))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
