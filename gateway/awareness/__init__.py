"""Agent awareness: what each agent is doing, from its screen (see classify)."""
