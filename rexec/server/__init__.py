"""rexecd's asyncio shell around ``rexec.protocol``: sessions, commands,
transfers, and the policy that admits them. ``rexec.daemon`` starts it."""
