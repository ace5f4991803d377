"""The transport-agnostic request pipeline: route → authenticate → authorise → execute → encode."""
