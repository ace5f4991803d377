"""The on-premise agent: config, the request pipeline, its HTTP fronts and the CLI."""
