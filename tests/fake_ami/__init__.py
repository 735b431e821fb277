"""Fake of Asterisk 22's AMI (line protocol over loopback TCP) for the fast suite, answering with clones
of the sandbox's recorded AMI traffic. See `server.FakeAmi`; the `fake_ami` fixture is in `pytest_plugin`."""
