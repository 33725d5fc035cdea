"""Fixtures shared by the adapter tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest.mock import Mock

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL


class CompatResponse(aiohttp.ClientResponse):
    """A ClientResponse that aioresponses 0.7.x can build under aiohttp 3.14.

    aioresponses 0.7.x predates the ``stream_writer`` argument aiohttp now requires; a
    stand-in writer is passed when aioresponses leaves it out.
    """

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", Mock(output_size=0))
        super().__init__(method, url, **kwargs)


class MockedHttp(aioresponses):
    """``aioresponses`` whose canned answers are CompatResponses unless a test says otherwise."""

    def add(self, url: Any, method: str = "GET", *args: Any, **kwargs: Any) -> None:
        if kwargs.get("response_class") is None:
            kwargs["response_class"] = CompatResponse
        super().add(url, method, *args, **kwargs)


@pytest.fixture
def mocked_http() -> Iterator[MockedHttp]:
    """Intercept every aiohttp request; register answers with ``add`` / ``get`` / ``post``."""
    mocked = MockedHttp()
    with mocked:
        yield mocked
