"""The conformance suite: point it at anyone's chat server or client and get a verdict per
requirement of PROTOCOL.md. Run `python3 -m conformance --help`."""
