"""Operator console: a live web map of the border with tracks, alerts and sensor health.

Served by the service itself (Starlette on uvicorn, as a task of the service's event
loop), so it shares the :class:`service.runtime.Pipeline` in-process:

* :class:`HubSink` wraps the pipeline's sink and feeds :class:`ConsoleHub`, which keeps
  the latest state and streams changes to browsers (Server-Sent Events);
* operator actions go through :class:`alerts.AlertService` like MQTT acks (same audit);
* users come from a users file with scrypt password hashes; server-side sessions,
  CSRF tokens, roles ``operator`` and ``viewer``.

Importing this package is light (the command line imports it for its options); the web
framework is imported on first use of a server name. See ``docs/console.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from console._errors import ConsoleError, UsersFileError
from console._options import ConsoleOptions, add_arguments, options_from_args

if TYPE_CHECKING:
    from console._app import ConsoleServer, ConsoleSettings, create_app, serve_console
    from console._auth import (
        Session,
        SessionStore,
        User,
        hash_password,
        load_users,
        verify_password,
        write_demo_users,
    )
    from console._hub import ConsoleHub, HubSink

_LAZY = {
    "ConsoleServer": "console._app",
    "ConsoleSettings": "console._app",
    "create_app": "console._app",
    "serve_console": "console._app",
    "Session": "console._auth",
    "SessionStore": "console._auth",
    "User": "console._auth",
    "hash_password": "console._auth",
    "load_users": "console._auth",
    "verify_password": "console._auth",
    "write_demo_users": "console._auth",
    "ConsoleHub": "console._hub",
    "HubSink": "console._hub",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'console' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ConsoleError",
    "ConsoleHub",
    "ConsoleOptions",
    "ConsoleServer",
    "ConsoleSettings",
    "HubSink",
    "Session",
    "SessionStore",
    "User",
    "UsersFileError",
    "add_arguments",
    "create_app",
    "hash_password",
    "load_users",
    "options_from_args",
    "serve_console",
    "verify_password",
    "write_demo_users",
]
