"""The agent's configuration: YAML validated once into frozen objects, every problem at once."""

from bridgehead.agent.config.load import load_config
from bridgehead.agent.config.model import AgentConfig

__all__ = ["AgentConfig", "load_config"]
