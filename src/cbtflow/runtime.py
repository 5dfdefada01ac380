"""What every rule script needs first: a log file, a thread budget and a cached client."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from cbtflow.config import model_roles
from cbtflow.llm import Client


def setup(log_path: str | None, threads: int = 1) -> logging.Logger:
    """Log to the rule's log file (and stderr); cap torch threads to the job's share."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text("")  # a rerun's log starts empty; appended to by the job and its model worker
        handlers.append(logging.FileHandler(log_path, mode="a"))
        os.environ["CBTFLOW_JOB_LOG"] = str(log_path)
    logging.basicConfig(
        level=logging.INFO, handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logger = logging.getLogger("cbtflow")

    def log_uncaught(kind, value, tb):  # the rule's log then says why the job failed
        logger.error("job failed", exc_info=(kind, value, tb))

    sys.excepthook = log_uncaught
    # The cache and usage loggers name only hashes and models; API keys never reach a log.
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The job's thread budget, for torch wherever it is first imported (here, or in the
    # job's model worker: llm/local/remote.py). Importing torch just to set it would cost a
    # job that runs no local model 1.5 s.
    threads = max(1, int(threads))
    os.environ["CBTFLOW_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when it is first imported
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return logger


def client(cache_dir: str | None, config: dict | None = None) -> Client:
    """The job's client. The budget, each role's ``concurrency`` and ``prices`` are read from
    the config itself, not from params: changing how a run is paced or priced never makes
    finished jobs rerun."""
    roles = list(model_roles(config).values()) if config else []
    limits = {role["model"]: int(role["concurrency"]) for role in roles if role.get("concurrency")}
    prices = {role["model"]: role["prices"] for role in roles if role.get("prices")}
    return Client(
        cache_dir=cache_dir,
        budget_usd=(config or {}).get("max_cost_usd"),
        concurrency_by_model=limits,
        prices_by_model=prices,
    )
