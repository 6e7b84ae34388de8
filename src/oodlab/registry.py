"""One generic registry, used for scores, losses, methods, datasets and models.

Entries are registered at their definition site with a decorator; each family's
``__init__.py`` imports every module of the family, so the registry is complete
and static (no plugin scanning).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from oodlab.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """What the registry knows about one named component.

    Attributes:
        name: lower snake case, as the paper calls the method.
        factory: the class or function that builds the component.
        config_type: the component's own hyper-parameter dataclass, if any.
        needs: what the component consumes (e.g. ``"logits"``, ``"features"``,
            ``"head_weight"``, ``"input_grad"``, ``"aux"``).
        requires_fit: whether ``fit`` must run before use.
        paper: short citation with arXiv id.
        module: the module that registered the entry (for the completeness test).
    """

    name: str
    factory: Callable[..., T]
    config_type: type | None = None
    needs: tuple[str, ...] = ()
    requires_fit: bool = False
    paper: str = ""
    module: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named collection of :class:`Entry` objects of one family."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        *,
        config_type: type | None = None,
        needs: tuple[str, ...] = (),
        requires_fit: bool = False,
        paper: str = "",
        **extra: Any,
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``; a second use of a name is an error."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            if name != name.lower() or " " in name:
                raise ValueError(f"{self.family} names are lower snake case, got {name!r}")
            self._entries[name] = Entry(
                name=name,
                factory=factory,
                config_type=config_type,
                needs=needs,
                requires_fit=requires_fit,
                paper=paper,
                module=getattr(factory, "__module__", ""),
                extra=dict(extra),
            )
            return factory

        return decorator

    def get(self, name: str) -> Entry[T]:
        """The entry called ``name``; an unknown name raises one line with the nearest match."""
        try:
            return self._entries[name]
        except KeyError:
            valid = sorted(self._entries)
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.family} {name!r}.{hint} Valid names: {', '.join(valid)}."
            ) from None

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the component ``name`` with hyper-parameters ``kwargs``."""
        return self.get(name).factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._entries)
