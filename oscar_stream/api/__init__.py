"""OSCAR's Manager REST API, served by the gateway: OSCAR's clients (oscar_python, oscar-cli, the dashboard) work
against oscar-stream unchanged."""
