"""Local development and the demo: everything on this machine, DEBUG on."""
from .base import *  # noqa: F401,F403
from .base import env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)
