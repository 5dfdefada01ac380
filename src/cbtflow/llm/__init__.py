"""One call interface for every role: ``Client.chat(endpoint, messages, sampling, seed)``.

Local models (``local/<dir>`` plus an optional adapter) run in-process with transformers
or behind a vLLM server; everything else goes through litellm by provider string; the
``scripted`` backend answers without a model, for workflow tests. Backends are registered
by name and imported lazily (``backends``), as in inspect_ai.
"""

from cbtflow.llm.cache import CallCache
from cbtflow.llm.client import BudgetExceeded, Client
from cbtflow.llm.endpoint import Endpoint
from cbtflow.llm.usage import UsageLog

__all__ = ["BudgetExceeded", "CallCache", "Client", "Endpoint", "UsageLog"]
