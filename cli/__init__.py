"""The `backbone` command line and the demo: start processes, ask the deployment, show results."""
