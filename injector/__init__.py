"""WHERE and HOW faults land: environments, agents and the gateway, the fault catalogue, target
selection, drivers and Chaos Mesh manifest translation (later issues fill these in)."""
