"""Drivers put faults in place and take them out: one module per kind of environment (agent, ...).

Drivers import no Django at module level, so they run (and are tested) without a database.
"""
