from __future__ import annotations

from typing import Iterator

import pytest

from fakecql.cluster import CQLCluster


@pytest.fixture
def cluster() -> Iterator[CQLCluster]:
    """Three plain nodes, two in dc1 and one in dc2; events pushed at once (status_delay=0)."""
    fake = CQLCluster([2, 1], status_delay=0)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
        assert fake.leftovers() == []
