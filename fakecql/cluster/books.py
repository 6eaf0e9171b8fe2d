# A cluster's shared priming books and what a test reads of its nodes' logs.
#
# Strategy: priming for the whole cluster is one PrimingBook, for a data
# center one book per data center; every node consults its own book first,
# then its data center's, then the cluster's (Node.add_priming_source), so
# the most specific priming answers. A node added later gets the same books;
# a restart keeps them (the Node outlives its server's loop). Unmet
# expectations are gathered book by book, each book once however many nodes
# share it. Logs: requests() merges the FrameReceived entries of the chosen
# nodes' activity logs in time order (one process, one monotonic clock).
#
# Rules: sans I/O (books and logs only); an unknown data center or node is a
# ValueError naming the known ones.
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Pattern, Union

from ..activity import FrameReceived
from ..priming import Priming, PrimingBook, QueryMatcher, UnmetExpectation

if TYPE_CHECKING:  # pragma: no cover
    from .cluster import ClusterNode

__all__ = ["ClusterBooks", "DataCenter", "merged_requests"]

StatementMatcher = Optional[Union[str, Pattern[str], Callable[[str], bool]]]


class ClusterBooks:
    """The whole-cluster book and one book per data center."""

    def __init__(self) -> None:
        self.cluster = PrimingBook("cluster primings")
        self._by_dc: Dict[str, PrimingBook] = {}

    def of_data_center(self, name: str) -> PrimingBook:
        book = self._by_dc.get(name)
        if book is None:
            book = self._by_dc[name] = PrimingBook(f"{name} primings")
        return book

    def attach(self, node: "ClusterNode") -> None:
        """Make `node` consult its data center's book, then the cluster's (after its own)."""
        node.node.priming_book.name = f"node {node.index} primings"
        node.node.add_priming_source(self.of_data_center(node.data_center))
        node.node.add_priming_source(self.cluster)

    def shared(self) -> List[PrimingBook]:
        return list(self._by_dc.values()) + [self.cluster]

    def unmet(self, nodes: Iterable["ClusterNode"]) -> List[UnmetExpectation]:
        """Unmet expectations of every node's own book, then the data centers', then the cluster's; each book once."""
        seen: List[int] = []
        found: List[UnmetExpectation] = []
        for book in [n.node.priming_book for n in nodes] + self.shared():
            if id(book) not in seen:
                seen.append(id(book))
                found.extend(book.unmet())
        return found


class DataCenter:
    """One data center of a CQLCluster: prime its nodes, read their requests."""

    def __init__(self, cluster: Any, name: str, book: PrimingBook) -> None:
        self._cluster = cluster
        self.name = name
        self.book = book

    @property
    def nodes(self) -> List["ClusterNode"]:
        return [n for n in self._cluster.nodes if n.data_center == self.name]

    def when_query(self, query: QueryMatcher, **options: Any) -> Priming:
        """Prime an answer on every node of this data center (nodes added to it later too)."""
        return self.book.when_query(query, **options)

    def clear_primings(self) -> None:
        """Forget this data center's primings (nodes' own and the cluster's stay)."""
        self.book.clear()

    def requests(self, statement: StatementMatcher = None, *, opcode: Optional[str] = None) -> List[FrameReceived]:
        """The requests its nodes logged, oldest first; see CQLCluster.requests."""
        return self._cluster.requests(statement, data_center=self.name, opcode=opcode)

    def __repr__(self) -> str:
        return f"<DataCenter {self.name} nodes {[n.index for n in self.nodes]}>"


def merged_requests(
    nodes: Iterable["ClusterNode"], statement: StatementMatcher, *, opcode: Optional[str]
) -> List[FrameReceived]:
    """The FrameReceived entries of `nodes`' logs matching statement and opcode, oldest first."""
    if statement is not None and not isinstance(statement, (str, re.Pattern)) and not callable(statement):
        raise TypeError(f"requests() takes a statement as a str, a compiled re or a callable, got {statement!r}")
    found: List[FrameReceived] = []
    for n in nodes:
        found.extend(n.activity.requests(statement, opcode=opcode))
    found.sort(key=lambda entry: entry.at)
    return found
