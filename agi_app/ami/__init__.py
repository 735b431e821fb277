"""AMI (Asterisk Manager Interface) over panoramisk: queue and agent state, the actions ARI does not serve."""
