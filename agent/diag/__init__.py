"""`bridgehead diag`: a support bundle (a zip) that works whether or not the agent runs.

`bundle` assembles it; `redaction` keeps every secret out of it; `inventory` gathers the
versions, ODBC drivers, recent log lines and the running agent's status; `tunnel` checks the
way to the relay step by step and says where it fails.
"""
