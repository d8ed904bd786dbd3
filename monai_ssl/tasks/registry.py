"""Task registry, in the style of timm's ``register_model`` / ``create_model`` / ``list_models``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monai_ssl.tasks.base import PretextTask

__all__ = ["register_task", "create_task", "list_tasks", "task_class"]

_TASKS: dict[str, type[PretextTask]] = {}


def register_task(task_class: type[PretextTask]) -> type[PretextTask]:
    """Class decorator adding a :py:class:`PretextTask` subclass to the registry under its ``name``."""
    name = task_class.name
    if name in _TASKS and _TASKS[name] is not task_class:
        raise ValueError(f"a different task is already registered as {name!r}.")
    _TASKS[name] = task_class
    return task_class


def list_tasks() -> list[str]:
    """Names of the registered tasks, in registration order."""
    return list(_TASKS)


def task_class(name: str) -> type[PretextTask]:
    """The class registered as ``name``."""
    if name not in _TASKS:
        raise ValueError(f"unknown pretext task {name!r}; available tasks: {', '.join(list_tasks())}.")
    return _TASKS[name]


def create_task(name: str, **kwargs) -> PretextTask:
    """Build the task registered as ``name`` with its arguments (see each task class)."""
    return task_class(name)(**kwargs)
