"""`webhooks:` in relay.yaml: who gets which agents' change events, where, signed how.

Rules: a subscription names at least one agent or group; its URL is https (plain http only
to a loopback address, for a receiver on the relay's own machine); its secret is a Standard
Webhooks signing secret (`whsec_` and base64), best given as `${env:NAME}` so it is not in the
file. `resources` empty means every resource the agent captures; `types` defaults to all
three. Names are unique: each is the consumer name (`webhook.NAME`) the relay commits on
every agent it delivers from.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bridgehead.certs.pki import NAME_PATTERN
from bridgehead.common.config.base import Duration, Frozen, is_loopback

EventType = Literal["bridgehead.row.created", "bridgehead.row.updated", "bridgehead.row.deleted"]
ALL_TYPES: tuple[EventType, ...] = (
    "bridgehead.row.created", "bridgehead.row.updated", "bridgehead.row.deleted",
)  # fmt: skip
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


class WebhookConfig(Frozen):
    name: str = Field(pattern=NAME_PATTERN.pattern, max_length=56)
    agents: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    """The resources whose events are delivered; empty: every resource the agent captures."""
    types: tuple[EventType, ...] = ALL_TYPES
    url: str
    secret: str = Field(repr=False)
    """The Standard Webhooks signing secret, `whsec_<base64>`."""
    retry_for: Duration = 72 * 3600.0
    """How long an event is retried before it goes to the dead letters."""
    retry_first: Duration = 1.0
    """The first retry's delay; each next one doubles, up to `retry_max`, with jitter."""
    retry_max: Duration = 600.0
    parallel: int = Field(16, ge=1, le=256)
    """Deliveries in flight at once (each for a different partition key)."""
    timeout: Duration = 10.0
    """How long the receiver has to answer one delivery."""

    @field_validator("agents", "groups")
    @classmethod
    def _names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not NAME_PATTERN.fullmatch(name):
                raise ValueError(f"{name!r} is not an agent or group name (letters, digits, . _ -)")
        return names

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
            return url
        raise ValueError(
            f"url {url!r} must be https://HOST/PATH (plain http only to a loopback address)"
        )

    @field_validator("secret")
    @classmethod
    def _secret(cls, secret: str) -> str:
        how = "secret must be a Standard Webhooks secret, whsec_ then base64 of 24 to 64 bytes"
        if not secret.startswith(SECRET_PREFIX):
            raise ValueError(how)
        try:
            raw = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(how) from None
        if not 24 <= len(raw) <= 64:
            raise ValueError(how)
        return secret

    @model_validator(mode="after")
    def _someone(self) -> WebhookConfig:
        if not self.agents and not self.groups:
            raise ValueError(f"webhook {self.name} names no agents: or groups: to deliver from")
        if self.retry_first > self.retry_max:
            raise ValueError("retry_first is longer than retry_max")
        return self

    @property
    def consumer(self) -> str:
        """The consumer name the relay commits on each agent for this subscription."""
        return f"webhook.{self.name}"

    def covers(self, agent_id: str, group: str | None) -> bool:
        return agent_id in self.agents or (group is not None and group in self.groups)
