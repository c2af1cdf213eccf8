"""A local postpress API for trying the tool, for its tests, and for users' CI (the `sandbox` extra).

Importing this package needs uvicorn: without the extra it raises ImportError, which the CLI turns into
"install the sandbox extra".
"""

from reconciler.sandbox.accounts import SandboxAccount, load_accounts_file
from reconciler.sandbox.app import Sandbox, random_api_key
from reconciler.sandbox.faults import BAD_ANSWERS, Fault
from reconciler.sandbox.thread import SandboxStartError, ServerThread

__all__ = [
    "BAD_ANSWERS",
    "Fault",
    "Sandbox",
    "SandboxAccount",
    "SandboxStartError",
    "ServerThread",
    "load_accounts_file",
    "random_api_key",
]
