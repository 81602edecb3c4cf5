"""The in-instance inference server (FC custom-container web-server contract).

Run it as ``python -m fcbench.server``; configuration comes from environment variables only
(see ``fcbench.server.config``), so the same code runs on the harness, in Docker and on FC.
"""
