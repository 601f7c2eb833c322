"""The node agent that runs on each host (python -m nodeagent). Imports nothing from the Django side."""
