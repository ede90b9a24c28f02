"""Spring Data paging: ``page``, ``size``, ``sort`` parameters in, ``Page`` JSON out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from multidict import MultiMapping

from ipunkt.api.queries import INT_MAX
from ipunkt.messages.errors import BadParameter
from ipunkt.store.base import Page, PageRequest, SortOrder

T = TypeVar("T")
MAX_SIZE = 2000


def page_request(
    query: MultiMapping[str],
    allowed: Iterable[str],
    *,
    default: tuple[SortOrder, ...] = (),
    aliases: Mapping[str, str] | None = None,
) -> PageRequest:
    """The requested page; 400 for what cannot be read (Spring is silent, we say why)."""
    page = _int(query, "page", 0, minimum=0)
    if page > INT_MAX:
        raise BadParameter(f"Parameter 'page' must be at most {INT_MAX}, not '{page}'")
    size = _int(query, "size", 10, minimum=0)
    size = min(size, MAX_SIZE) if size >= 1 else 10  # as Spring: a size below 1 is the default
    allowed = set(allowed)
    orders: list[SortOrder] = []
    for value in query.getall("sort", []):
        fields = [f.strip() for f in value.split(",") if f.strip()]
        descending = False
        if fields and fields[-1].lower() in ("asc", "desc"):
            descending = fields.pop().lower() == "desc"
        for prop in fields:
            prop = (aliases or {}).get(prop, prop)
            if prop not in allowed:
                raise BadParameter(
                    f"No property '{prop}' found to sort by; use one of "
                    + ", ".join(sorted(allowed))
                )
            orders.append(SortOrder(prop, descending))
    return PageRequest(page, size, tuple(orders) or default)


def _int(query: MultiMapping[str], name: str, default: int, *, minimum: int) -> int:
    raw = query.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"Parameter '{name}' must be a whole number, not '{raw}'") from None
    return max(value, minimum)


def page_json(page: Page[T], render: Callable[[T], Any]) -> dict[str, Any]:
    """Spring's ``Page`` in the key order the original writes."""
    sort = {"sorted": page.sorted, "unsorted": not page.sorted, "empty": not page.sorted}
    request = page.request
    total_pages = -(-page.total // request.size) if request.size else 0
    content = [render(item) for item in page.content]
    return {
        "content": content,
        "pageable": {
            "sort": dict(sort),
            "pageNumber": request.page,
            "pageSize": request.size,
            "offset": request.offset,
            "paged": True,
            "unpaged": False,
        },
        "totalElements": page.total,
        "last": request.page + 1 >= total_pages,
        "totalPages": total_pages,
        "sort": dict(sort),
        "numberOfElements": len(content),
        "first": request.page == 0,
        "size": request.size,
        "number": request.page,
        "empty": not content,
    }
