"""Which agents are connected, through which links, and which link takes the next request.

Requests go to the link with the fewest streams in flight: for an agent among its own
connections, for a group among all its agents' connections.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from relay.link import AgentLink


@dataclass(frozen=True)
class AgentView:
    agent_id: str
    group: str | None
    connections: int
    since: float
    rtt_ms: float | None
    in_flight: int


class Registry:
    def __init__(self) -> None:
        self._links: dict[str, list[AgentLink]] = defaultdict(list)

    def add(self, link: AgentLink) -> None:
        self._links[link.identity.agent_id].append(link)

    def remove(self, link: AgentLink) -> None:
        links = self._links.get(link.identity.agent_id, [])
        if link in links:
            links.remove(link)
        if not links:
            self._links.pop(link.identity.agent_id, None)

    def links(self) -> list[AgentLink]:
        return [link for links in self._links.values() for link in links]

    def group_of(self, agent_id: str) -> str | None:
        links = self._links.get(agent_id)
        return links[0].identity.group if links else None

    def pick_agent(self, agent_id: str) -> AgentLink | None:
        return _least_busy(self._links.get(agent_id, []))

    def pick_group(self, group: str) -> AgentLink | None:
        return _least_busy([link for link in self.links() if link.identity.group == group])

    def drop(self, refused: Callable[[AgentLink], bool]) -> list[AgentLink]:
        """Abort the links `refused` picks (revoked agents); those links."""
        dropped = [link for link in self.links() if refused(link)]
        for link in dropped:
            self.remove(link)
            link.abort()
        return dropped

    def views(self) -> list[AgentView]:
        out = []
        for agent_id, links in sorted(self._links.items()):
            rtts = [link.liveness.rtt for link in links if link.liveness.rtt is not None]
            out.append(
                AgentView(
                    agent_id=agent_id,
                    group=links[0].identity.group,
                    connections=len(links),
                    since=min(link.since for link in links),
                    rtt_ms=round(min(rtts) * 1000, 3) if rtts else None,
                    in_flight=sum(link.in_flight for link in links),
                )
            )
        return out


def _least_busy(links: list[AgentLink]) -> AgentLink | None:
    live = [link for link in links if not link.closed.is_set() and not link.draining]
    return min(live, key=lambda link: link.in_flight) if live else None
