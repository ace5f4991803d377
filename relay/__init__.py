"""The cloud-side relay: terminates agent tunnels and routes cloud callers to agents."""
