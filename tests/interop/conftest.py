"""Fixtures of the interop tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .netns import Namespace, network_namespace, unavailable_reason


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> Iterator[Namespace]:
    """A network namespace of the test's own, named after its module; skipped where none can
    be made (not root, no `ip`)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    module = request.module.__name__.rsplit(".", 1)[-1]
    prefix = module.removeprefix("test_").removesuffix("_chip").replace("_", "-")
    with network_namespace(prefix) as namespace:
        yield namespace
