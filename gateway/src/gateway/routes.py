"""The route table compiled for matching: ``(method, path)`` → :class:`Route`.

Paths without parameters are one dictionary look-up; the others are matched by one
compiled alternation per method, whose named group says which row matched. A
parameter is one path segment, never ``.`` or ``..`` (a proxy or client that
normalises the path must not turn one operation into another).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway import route_table
from servicekit.auth import check_roles

_PARAM = re.compile(r"\{[^/{}]+\}")
_SEGMENT = r"(?!\.\.?(?:/|$))[^/]+"
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(eq=False, slots=True)
class Route:
    """One row of the table, with what the edge needs at hand for each request."""

    method: str
    template: str
    access: str  # "roles", or route_table.PUBLIC / PROBE / INTERNAL
    roles: frozenset[str]
    rate_class: str  # "read" or "write"

    @property
    def public(self) -> bool:
        return self.access in (route_table.PUBLIC, route_table.PROBE)


def normalised(template: str) -> str:
    """The template with its parameter names erased: ``/v1/calls/{}``."""
    return _PARAM.sub("{}", template)


class RouteTable:
    """Finds the table's row for a request; ``HEAD`` is answered by the ``GET`` row."""

    def __init__(self, rows: Iterable[tuple[str, str, str | tuple[str, ...]]]) -> None:
        self.routes: list[Route] = []
        self._static: dict[tuple[str, str], Route] = {}
        templated: dict[str, list[Route]] = {}
        seen: set[tuple[str, str]] = set()
        for method, template, access in rows:
            key = (method, normalised(template))
            if key in seen:
                raise ValueError(f"route table: {method} {template} appears twice")
            seen.add(key)
            if isinstance(access, tuple):
                route = Route(method, template, "roles", frozenset(check_roles(access)),
                              _rate_class(method))
            elif access in (route_table.PUBLIC, route_table.PROBE, route_table.INTERNAL):
                route = Route(method, template, access, frozenset(), _rate_class(method))
            else:
                raise ValueError(f"route table: {method} {template}: unknown access {access!r}")
            self.routes.append(route)
            if _PARAM.search(template):
                templated.setdefault(method, []).append(route)
            else:
                self._static[(method, template)] = route
        self._patterns: dict[str, tuple[re.Pattern[str], dict[str, Route]]] = {}
        for method, routes in templated.items():
            routes.sort(key=_specificity)  # a literal segment before a parameter
            groups = {f"r{i}": route for i, route in enumerate(routes)}
            pattern = "|".join(f"(?P<{name}>{_regex(route.template)})"
                               for name, route in groups.items())
            self._patterns[method] = (re.compile(pattern), groups)

    @classmethod
    def default(cls) -> RouteTable:
        return cls(route_table.ROUTES)

    def match(self, method: str, path: str) -> Route | None:
        if method == "HEAD":
            method = "GET"
        route = self._static.get((method, path))
        if route is not None:
            return route
        compiled = self._patterns.get(method)
        if compiled is None:
            return None
        found = compiled[0].fullmatch(path)
        return None if found is None else compiled[1][found.lastgroup]  # type: ignore[index]

    def allowed_methods(self, path: str) -> list[str]:
        """The methods the table has for ``path`` (for a 405's ``Allow``)."""
        methods = {m for m in {r.method for r in self.routes} if self.match(m, path)}
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)


def _rate_class(method: str) -> str:
    return "read" if method in READ_METHODS else "write"


def _regex(template: str) -> str:
    parts = _PARAM.split(template)
    return _SEGMENT.join(re.escape(part) for part in parts)


def _specificity(route: Route) -> tuple[tuple[int, str], ...]:
    return tuple((1, "") if _PARAM.fullmatch(seg) else (0, seg)
                 for seg in route.template.split("/"))
