"""Agency simulators: programs that play the agencies' systems for the demo and the tests.

They share no code with the connectors on purpose: they are the outside world."""
