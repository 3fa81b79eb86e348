"""The Redis data layer: the only code that knows key names, Lua, or Redis commands."""

from jobbers.state.store import TaskStore

__all__ = ["TaskStore"]
