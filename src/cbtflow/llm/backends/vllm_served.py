"""The optional vLLM backend for therapist roles: a job-scoped OpenAI-compatible server.

On a GPU, vLLM's continuous batching and paged attention generate many sessions far
faster than transformers' ``generate``. By default the simulate rule starts one server for
its base model with the job's adapter loaded as a LoRA module (selected by name in each
request), talks to it through litellm's ``openai/`` provider like any API, and stops it when
the job ends, so nothing outlives the job and SLURM's GPU allocation is released with it.
With ``therapist.vllm.shared_servers`` a base is served once (per node) for every model ×
condition × seed job: each job loads its adapter into that server by name.

The calls keep the local endpoint's identity (base directory, adapter hash) plus
``backend: vllm``: the port a server happens to get never enters a cache key.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cbtflow.llm.backends import Backend, register
from cbtflow.llm.endpoint import Endpoint

log = logging.getLogger(__name__)


class ServerStartError(RuntimeError):
    """The server exited or never answered; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_name(endpoint: Endpoint) -> str:
    """The model name requests use: the adapter's LoRA module, or the base itself."""
    return f"lora-{endpoint.adapter_sha[:12]}" if endpoint.adapter else "base"


def lora_rank(adapter: str) -> int:
    return int(json.loads((Path(adapter) / "adapter_config.json").read_text())["r"])


BNB_CHECKPOINT = re.compile(r"bnb|4bit|4-bit", re.IGNORECASE)

# vLLM accepts only these values for --max-lora-rank.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def server_command(endpoint: Endpoint, port: int, settings: dict[str, Any]) -> list[str]:
    """``vllm serve`` (vLLM 0.33) for the endpoint's base, with its adapter (if any) as a
    LoRA module. The ``vllm`` script is the one installed beside this interpreter.
    ``settings``: ``therapist.vllm`` from a validated config (its defaults filled in there)."""
    cmd = [
        str(Path(sys.executable).with_name("vllm")),
        "serve",
        endpoint.local_path,
        "--served-model-name",
        "base",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--gpu-memory-utilization",
        str(settings["gpu_memory_utilization"]),
        # A session's next turn starts with its previous prompt and reply: vLLM's automatic
        # prefix caching reuses their KV blocks (on by default in recent vLLM; said explicitly).
        "--enable-prefix-caching",
    ]
    if settings.get("max_model_len"):
        cmd += ["--max-model-len", str(settings["max_model_len"])]
    if endpoint.chat_template:
        cmd += ["--chat-template", endpoint.chat_template]
    if endpoint.adapter:
        rank = next((r for r in VLLM_LORA_RANKS if r >= lora_rank(endpoint.adapter)), VLLM_LORA_RANKS[-1])
        cmd += [
            "--enable-lora",
            "--lora-modules",
            f"{served_name(endpoint)}={endpoint.adapter}",
            "--max-lora-rank",
            str(rank),
        ]
    return cmd + [str(a) for a in settings.get("extra_args", [])]


class OpenAIServer:
    """Start an OpenAI-compatible server, wait until it lists ``expect``, stop it on exit."""

    def __init__(
        self, command: Sequence[str], port: int, expect: str, log_path: str | Path, startup_timeout: float = 900.0
    ):
        self.command, self.port, self.expect = list(command), port, expect
        self.log_path, self.startup_timeout = Path(log_path), startup_timeout
        self.url = f"http://127.0.0.1:{port}/v1"
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> OpenAIServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        log.info("starting %s", " ".join(self.command))
        self._proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while not self._serves():
            if self._proc.poll() is not None:
                self._fail(f"exited with status {self._proc.returncode}")
            if time.monotonic() > deadline:
                self._fail(f"did not serve {self.expect!r} within {self.startup_timeout:.0f} s")
            time.sleep(1.0)
        log.info("server ready at %s (%s)", self.url, self.expect)
        return self

    def _serves(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/models", timeout=5) as answer:
                return self.expect in {m["id"] for m in json.load(answer).get("data", [])}
        except (OSError, ValueError):
            return False

    def _fail(self, why: str) -> None:
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise ServerStartError(f"{Path(self.command[0]).name} server {why}; log {self.log_path}:\n{tail}")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def vllm_server(endpoint: Endpoint, log_path: str | Path, settings: dict[str, Any]) -> OpenAIServer:
    port = free_port()
    command = server_command(endpoint, port, settings)
    return OpenAIServer(command, port, served_name(endpoint), log_path, float(settings["startup_timeout"]))


def _post(url: str, payload: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except OSError as err:
        raise ServerStartError(f"shared vLLM server {url.rsplit('/', 1)[0]} does not answer: {err}") from err


def attach(endpoint: Endpoint, url: str) -> Endpoint:
    """Use a running shared server (one per base, started once per node, see README): load
    the job's adapter into it by name (vLLM's runtime LoRA loading, which needs
    ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` on the server; loading a name twice is fine)
    and check that the server lists it. The server is left running for the next job."""
    name = served_name(endpoint)
    if endpoint.adapter:
        status, body = _post(f"{url}/load_lora_adapter", {"lora_name": name, "lora_path": endpoint.adapter})
        if status != 200 and "already" not in body.lower():
            raise ServerStartError(
                f"shared vLLM server {url} refused adapter {endpoint.adapter} ({status}): "
                f"{body[:500]}; start it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora"
            )
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=30) as answer:
            listed = {m["id"] for m in json.load(answer).get("data", [])}
    except (OSError, ValueError) as err:
        raise ServerStartError(f"shared vLLM server {url} does not answer: {err}") from err
    if name not in listed:
        raise ServerStartError(
            f"shared vLLM server {url} does not list {name!r} (it lists {sorted(listed)}); "
            "is it serving this base with --served-model-name base?"
        )
    return dataclasses.replace(endpoint, serve_url=url, serve_model=name)


@register
class Vllm(Backend):
    """A local model behind a job-scoped or shared vLLM server (``therapist.backend: vllm``):
    every session of the batch at once, each reply recorded under the local model's name
    (its identity in transcripts)."""

    name = "vllm"
    order = 20
    server = True
    therapist = True
    environment = "vllm"

    @classmethod
    def serves(cls, endpoint):
        return endpoint.is_local and endpoint.serve_url is not None

    def __init__(self) -> None:
        from cbtflow.llm import api

        self.api = api

    def generate(self, endpoint, conversations, sampling, seeds, *, concurrency, on_reply, tolerate_failures):
        def as_local(j: int, reply: dict[str, Any]) -> None:
            reply["model"] = endpoint.model
            if on_reply:
                on_reply(j, reply)

        served = endpoint.served(sampling)
        return self.api.complete_many(served, conversations, sampling, seeds, len(conversations), as_local)

    @classmethod
    def weights(cls, config: dict[str, Any], base: str) -> str | None:
        """The 16-bit weights named for serving (``bases.<base>.serve_source``), if any."""
        return config["bases"][base].get("serve_source")

    @classmethod
    def config_problems(cls, config: dict[str, Any]) -> list[str]:
        """What vLLM 0.33 would refuse only after a GPU job started: a bitsandbytes base and a
        LoRA rank above its largest --max-lora-rank."""
        problems = []
        for name in sorted({m["base"] for m in config["models"].values()} & set(config["bases"])):
            source = cls.weights(config, name) or config["bases"][name]["source"]
            if BNB_CHECKPOINT.search(source):
                problems.append(
                    f"config.bases.{name}.serve_source: vLLM 0.33 cannot serve the bitsandbytes checkpoint "
                    f"'{source}' (no bitsandbytes quantization method); name its 16-bit base, e.g. "
                    "meta-llama/Llama-3.1-8B-Instruct (QLoRA adapters have the same shapes)"
                )
        for name, model in config["models"].items():
            if int(model["lora"]["r"]) > max(VLLM_LORA_RANKS):
                problems.append(
                    f"config.models.{name}.lora.r: {model['lora']['r']} is above the largest LoRA rank vLLM "
                    f"serves ({max(VLLM_LORA_RANKS)}; allowed --max-lora-rank values {list(VLLM_LORA_RANKS)})"
                )
        return problems

    @classmethod
    @contextmanager
    def serving(
        cls, endpoint: Endpoint, log_path: str | Path, settings: dict[str, Any], shared_url: str | None = None
    ) -> Iterator[Endpoint]:
        """The endpoint pointed at the base's shared server when one is configured
        (``therapist.vllm.shared_servers``: one server per base for every simulate job), else
        at a server started here for this job and stopped when the block ends (the fallback)."""
        endpoint = dataclasses.replace(endpoint, backend=cls.name)
        if shared_url:
            yield attach(endpoint, shared_url.rstrip("/"))
            return
        with vllm_server(endpoint, log_path, settings) as server:
            yield dataclasses.replace(endpoint, serve_url=server.url, serve_model=server.expect)
