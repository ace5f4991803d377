"""What the agent and the relay share, and nothing else; it imports nothing else of ours."""
