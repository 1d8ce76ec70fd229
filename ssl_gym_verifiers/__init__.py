"""The ssl_gym taskset as a verifiers plugin, importable by its plugin id.

verifiers imports a taskset plugin by a top-level module name (``--env.taskset.id
ssl_gym_verifiers``) and takes the Taskset, Env and Harness subclasses from its
``__all__``; this package re-exports :mod:`ssl_gym.adapters.verifiers` under that name.
"""

from ssl_gym.adapters.verifiers import *  # noqa: F403
from ssl_gym.adapters.verifiers import __all__ as __all__
