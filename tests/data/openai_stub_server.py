"""A stand-in OpenAI-compatible server for the vLLM backend's tests (vLLM needs a GPU).

    python openai_stub_server.py PORT MODEL_NAME [MODEL_NAME ...]

Lists the given model names at /v1/models; a chat completion answers with the model name
it was asked for and any `repetition_penalty` it received, so tests can see the routing.
POST /v1/load_lora_adapter adds a name, as vLLM's runtime LoRA loading does.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, NAMES = int(sys.argv[1]), sys.argv[2:]


class Handler(BaseHTTPRequestHandler):
    def _send(self, payload, status=200):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._send({"object": "list", "data": [{"id": n, "object": "model"} for n in NAMES]})

    def do_POST(self):  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.endswith("/load_lora_adapter"):  # vLLM's runtime LoRA loading
            if request["lora_name"] in NAMES:
                self._send({"error": {"message": f"The lora adapter '{request['lora_name']}' has already been "
                                                 "loaded."}}, status=400)
                return
            NAMES.append(request["lora_name"])
            self._send({"message": "Success"})
            return
        if request["model"] not in NAMES:
            self._send({"error": {"message": f"unknown model {request['model']}"}}, status=404)
            return
        text = f"served by {request['model']} rp={request.get('repetition_penalty')}"
        self._send({"id": "x", "object": "chat.completion", "created": 0, "model": request["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}})

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
