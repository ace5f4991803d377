"""Which agents are connected, through which links, and which link takes the next request.

Requests go to the link with the fewest streams in flight that the agent's stream limit
(MAX_CONCURRENT_STREAMS) still allows: for an agent among its own connections, for a group
among all its agents' connections. An agent id has one group at a time: a link whose
certificate names another group than the id's live links is refused (`admit`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from bridgehead.relay.link import AgentLink


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
        self._room = asyncio.Event()
        self._watchers: list[Callable[[AgentLink], None]] = []

    def watch(self, joined: Callable[[AgentLink], None]) -> None:
        """Call `joined` with each link added from now on."""
        self._watchers.append(joined)

    def admit(self, link: AgentLink) -> AgentLink | None:
        """Add `link`; or, when its group disagrees with the id's live links, the live link
        it disagrees with (and `link` is not added)."""
        for live in self._links.get(link.identity.agent_id, []):
            if live.identity.group != link.identity.group and not live.closed.is_set():
                return live
        self.add(link)
        return None

    def add(self, link: AgentLink) -> None:
        self._links[link.identity.agent_id].append(link)
        link.on_room = self._room_made
        self._room_made()
        for joined in self._watchers:
            joined(link)

    def _room_made(self) -> None:
        if not self._room.is_set():
            self._room.set()
            self._room = asyncio.Event()  # the waiters woken hold the old one

    async def room(self) -> None:
        """Wait until a stream ends or a link comes or goes."""
        await self._room.wait()

    def remove(self, link: AgentLink) -> None:
        links = self._links.get(link.identity.agent_id, [])
        if link in links:
            links.remove(link)
        if not links:
            self._links.pop(link.identity.agent_id, None)

    def links(self) -> list[AgentLink]:
        return [link for links in self._links.values() for link in links]

    def agent_links(self, agent_id: str) -> list[AgentLink]:
        """The agent's links that take new requests."""
        return _live(self._links.get(agent_id, []))

    def group_links(self, group: str) -> list[AgentLink]:
        return _live([link for link in self.links() if link.identity.group == group])

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


def _live(links: list[AgentLink]) -> list[AgentLink]:
    return [link for link in links if not link.closed.is_set() and not link.draining]


def least_busy(links: list[AgentLink]) -> AgentLink | None:
    """The link with the fewest streams in flight among those with room for one more."""
    roomy = [link for link in links if link.has_room]
    return min(roomy, key=lambda link: link.in_flight) if roomy else None
